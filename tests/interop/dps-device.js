'use strict';
// Microsoft's Node device SDKs against edgeid's DPS and hub: registration
// over HTTPS with symmetric keys (individual and group) and X.509
// (individual and group), then telemetry over the hub's HTTPS endpoint
// with the credentials DPS assigned, then the registration states through
// azure-iot-provisioning-service and the initial twin through azure-iothub.
//
// Run by tests/integration/test-dps-interop.sh, which sets:
//   CLOUD_DPS_HOST, CLOUD_DPS_CONNECTION_STRING, CLOUD_HUB_CONNECTION_STRING,
//   NODE_EXTRA_CA_CERTS, DPS_ID_SCOPE, CLOUD_BIN, CLOUD_CONFIG,
//   DPS_X509_INDIVIDUAL (path prefix: .pem .key, CN = x509-dev-1, self-signed),
//   DPS_X509_GROUP (path prefix: -chain.pem .key, CN = x509-grp-dev-1, signed by
//   the device CA), DPS_DEVICE_CA (the device CA's PEM).

const crypto = require('node:crypto');
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http: ProvisioningHttp } = require('azure-iot-provisioning-device-http');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { X509Security } = require('azure-iot-security-x509');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { Client, Message } = require('azure-iot-device');
const { Http: DeviceHttp } = require('azure-iot-device-http');
const { Registry } = require('azure-iothub');
const { test, done, call, assert } = require('./lib/tap');

const dpsHost = process.env.CLOUD_DPS_HOST;
const idScope = process.env.DPS_ID_SCOPE;
const service = ProvisioningServiceClient.fromConnectionString(process.env.CLOUD_DPS_CONNECTION_STRING);
const registry = Registry.fromConnectionString(process.env.CLOUD_HUB_CONNECTION_STRING);
const KEY = crypto.randomBytes(32).toString('base64');
const GROUP_KEY = crypto.randomBytes(64).toString('base64');

function derive(groupKey, registrationId) {
  return crypto.createHmac('sha256', Buffer.from(groupKey, 'base64')).update(registrationId).digest('base64');
}

function register(security) {
  const client = ProvisioningDeviceClient.create(dpsHost, idScope, new ProvisioningHttp(), security);
  return call((cb) => client.register(cb));
}

// Send one message with the device client, then find it in the hub's
// store through the admin CLI.
async function sendAndFind(client, deviceId, text) {
  await call((cb) => client.open(cb));
  const msg = new Message(text);
  msg.properties.add('probe', 'dps-interop');
  await call((cb) => client.sendEvent(msg, cb));
  await call((cb) => client.close(cb));
  const out = execFileSync(process.env.CLOUD_BIN,
    ['--config', process.env.CLOUD_CONFIG, 'telemetry', 'list', deviceId, '--json'], { encoding: 'utf8' });
  const messages = JSON.parse(out);
  assert.ok(messages.some((m) => m.body === text), `message "${text}" in ${out}`);
}

async function main() {
  await test('symmetric key, individual: assigned with the enrollment device id', async () => {
    await call((cb) => service.createOrUpdateIndividualEnrollment({
      registrationId: 'sym-dev-1',
      deviceId: 'sym-device-one',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: KEY, secondaryKey: KEY } },
      initialTwin: { tags: { site: 'lab-1' }, properties: { desired: { interval: 7 } } },
    }, cb));
    const result = await register(new SymmetricKeySecurityClient('sym-dev-1', KEY));
    assert.equal(result.status, 'assigned');
    assert.equal(result.deviceId, 'sym-device-one');
    assert.equal(result.assignedHub, process.env.CLOUD_HUB_HOST);
    assert.equal(result.substatus, 'initialAssignment');
  });

  await test('symmetric key, individual: telemetry with the enrollment key reaches the hub', async () => {
    const cs = `HostName=${process.env.CLOUD_HUB_HOST};DeviceId=sym-device-one;SharedAccessKey=${KEY}`;
    await sendAndFind(Client.fromConnectionString(cs, DeviceHttp), 'sym-device-one', 'hello from sym-dev-1');
  });

  await test('the initial twin and capabilities are in the hub', async () => {
    const [twin] = await call((cb) => registry.getTwin('sym-device-one', cb));
    assert.deepEqual(twin.tags, { site: 'lab-1' });
    assert.equal(twin.properties.desired.interval, 7);
  });

  await test('symmetric key, group: the derived key registers, the device id is the registration id', async () => {
    await call((cb) => service.createOrUpdateEnrollmentGroup({
      enrollmentGroupId: 'sym-group',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GROUP_KEY } },
      capabilities: { iotEdge: true },
    }, cb));
    const key = derive(GROUP_KEY, 'sym-grp-dev-1');
    const result = await register(new SymmetricKeySecurityClient('sym-grp-dev-1', key));
    assert.equal(result.status, 'assigned');
    assert.equal(result.deviceId, 'sym-grp-dev-1');
    const cs = `HostName=${result.assignedHub};DeviceId=sym-grp-dev-1;SharedAccessKey=${key}`;
    await sendAndFind(Client.fromConnectionString(cs, DeviceHttp), 'sym-grp-dev-1', 'hello from the group');
    const [dev] = await call((cb) => registry.get('sym-grp-dev-1', cb));
    assert.equal(dev.capabilities.iotEdge, true);
  });

  await test('symmetric key: a wrong key is refused (401)', async () => {
    try {
      await register(new SymmetricKeySecurityClient('sym-dev-1', GROUP_KEY));
    } catch (err) {
      assert.equal(err.name, 'UnauthorizedError', String(err));
      assert.match(err.message, /"errorCode":401002,.*"message":"Unauthorized"/);
      return;
    }
    throw new Error('registration with a wrong key succeeded');
  });

  const indiv = process.env.DPS_X509_INDIVIDUAL;
  const indivCert = { cert: fs.readFileSync(`${indiv}.pem`, 'utf8'), key: fs.readFileSync(`${indiv}.key`, 'utf8') };
  await test('X.509, individual: registers with its certificate; hub auth is selfSigned', async () => {
    await call((cb) => service.createOrUpdateIndividualEnrollment({
      registrationId: 'x509-dev-1',
      attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: indivCert.cert } } } },
    }, cb));
    const result = await register(new X509Security('x509-dev-1', indivCert));
    assert.equal(result.status, 'assigned');
    assert.equal(result.deviceId, 'x509-dev-1');
    const [dev] = await call((cb) => registry.get('x509-dev-1', cb));
    assert.equal(dev.authentication.type, 'selfSigned');
    const thumb = crypto.createHash('sha1').update(new crypto.X509Certificate(indivCert.cert).raw).digest('hex').toUpperCase();
    assert.equal(dev.authentication.x509Thumbprint.primaryThumbprint, thumb);
  });

  await test('X.509, individual: telemetry with the certificate reaches the hub', async () => {
    const client = Client.fromConnectionString(`HostName=${process.env.CLOUD_HUB_HOST};DeviceId=x509-dev-1;x509=true`, DeviceHttp);
    client.setOptions(indivCert);
    await sendAndFind(client, 'x509-dev-1', 'hello from x509-dev-1');
  });

  const grp = process.env.DPS_X509_GROUP;
  const grpCert = { cert: fs.readFileSync(`${grp}-chain.pem`, 'utf8'), key: fs.readFileSync(`${grp}.key`, 'utf8') };
  await test('X.509, group: a certificate signed by the group signing certificate registers', async () => {
    await call((cb) => service.createOrUpdateEnrollmentGroup({
      enrollmentGroupId: 'x509-group',
      attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: fs.readFileSync(process.env.DPS_DEVICE_CA, 'utf8') } } } },
    }, cb));
    const result = await register(new X509Security('x509-grp-dev-1', grpCert));
    assert.equal(result.status, 'assigned');
    assert.equal(result.deviceId, 'x509-grp-dev-1');
    assert.equal(result.x509.enrollmentGroupId, 'x509-group');
    const [dev] = await call((cb) => registry.get('x509-grp-dev-1', cb));
    assert.equal(dev.authentication.type, 'certificateAuthority');
  });

  await test('X.509, group: telemetry with the CA-signed certificate reaches the hub', async () => {
    const client = Client.fromConnectionString(`HostName=${process.env.CLOUD_HUB_HOST};DeviceId=x509-grp-dev-1;x509=true`, DeviceHttp);
    client.setOptions(grpCert);
    await sendAndFind(client, 'x509-grp-dev-1', 'hello from the x509 group');
  });

  await test('X.509: a certificate whose CN is not the registration id is refused', async () => {
    try {
      await register(new X509Security('x509-dev-2', indivCert));
    } catch (err) {
      assert.equal(err.name, 'UnauthorizedError', String(err));
      assert.match(err.message, /the client certificate's subject CN must be the registration id/);
      return;
    }
    throw new Error('registration succeeded');
  });

  await test('registration states through the service client', async () => {
    const [state] = await call((cb) => service.getDeviceRegistrationState('sym-dev-1', cb));
    assert.equal(state.status, 'assigned');
    assert.equal(state.deviceId, 'sym-device-one');
    assert.ok(state.etag);
    const query = service.createEnrollmentGroupDeviceRegistrationStateQuery({ query: '*' }, 'sym-group', 10);
    const [page] = await call((cb) => query.next(cb));
    assert.deepEqual(page.map((s) => [s.registrationId, s.status]), [['sym-grp-dev-1', 'assigned']]);
    assert.equal(query.hasMoreResults, false);
  });

  await test('registering again reports reprovisionedToInitialAssignment', async () => {
    const result = await register(new SymmetricKeySecurityClient('sym-dev-1', KEY));
    assert.equal(result.substatus, 'reprovisionedToInitialAssignment');
    assert.equal(result.deviceId, 'sym-device-one');
  });

  await test('a disabled enrollment does not register', async () => {
    const [e] = await call((cb) => service.getIndividualEnrollment('sym-dev-1', cb));
    e.provisioningStatus = 'disabled';
    await call((cb) => service.createOrUpdateIndividualEnrollment(e, cb));
    try {
      await register(new SymmetricKeySecurityClient('sym-dev-1', KEY));
    } catch (err) {
      // Node knows no "disabled" status: it fails on it.
      assert.match(String(err), /disabled/);
      return;
    }
    throw new Error('registration succeeded');
  });

  await test('deleting the registration state', async () => {
    await call((cb) => service.deleteDeviceRegistrationState('sym-grp-dev-1', cb));
    try {
      await call((cb) => service.getDeviceRegistrationState('sym-grp-dev-1', cb));
    } catch (err) {
      assert.equal(err.response.statusCode, 404);
      return;
    }
    throw new Error('the state is still there');
  });

  done();
}

main();
