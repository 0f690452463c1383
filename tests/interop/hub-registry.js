'use strict';
// Microsoft's azure-iothub Registry and azure-iot-device (HTTP transport)
// against edgeid's hub, unchanged. Run by tests/integration/test-hub-interop.sh,
// which starts the hub through tests/lib/cloud-env.sh and sets:
//   CLOUD_HUB_CONNECTION_STRING  the iothubowner connection string
//   CLOUD_HUB_HOST               the hub's host name (an IP address)
//   NODE_EXTRA_CA_CERTS          the test root CA
//   HUB_SELF_CERT / HUB_SELF_KEY / HUB_SELF_THUMBPRINT   a self-signed device cert
//   HUB_CA_CERT / HUB_CA_KEY     a device cert chain signed by the hub's device CA
//   HUB_CA_DEVICE_ID             that certificate's CN, the device id
//   CLOUD_BIN, CLOUD_CONFIG      to read telemetry back with edgeid-cloud
// The store is expected to be empty: the test lists every device.

const fs = require('node:fs');
const { execFileSync } = require('node:child_process');
const { test, done, call, assert, diag } = require('./lib/tap');
const iothub = require('azure-iothub');
const { Client, Message } = require('azure-iot-device');
const { Http } = require('azure-iot-device-http');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const hubHost = env('CLOUD_HUB_HOST');
const registry = iothub.Registry.fromConnectionString(env('CLOUD_HUB_CONNECTION_STRING'));
const run = Date.now().toString(36);
const ids = {
  sas: 'sas-device',
  self: 'self-device',
  ca: env('HUB_CA_DEVICE_ID'), // the CN of HUB_CA_CERT
  edge: 'edge-device',
};

function errorName(err) {
  return err && (err.name || (err.constructor && err.constructor.name));
}

async function expectError(promise, name, status) {
  try {
    await promise;
  } catch (err) {
    assert.equal(errorName(err), name, `error ${err}`);
    if (status) assert.equal(err.response && err.response.statusCode, status);
    return err;
  }
  throw new Error(`expected ${name}, but the call succeeded`);
}

function telemetry(deviceId) {
  const out = execFileSync(env('CLOUD_BIN'),
    ['--config', env('CLOUD_CONFIG'), 'telemetry', 'list', deviceId, '--json'],
    { encoding: 'utf8' });
  return JSON.parse(out);
}

async function sendAndClose(client, message) {
  await call((cb) => client.open(cb));
  await call((cb) => client.sendEvent(message, cb));
  await call((cb) => client.close(cb));
}

(async () => {
  let sasDevice;

  await test('create a SAS device: keys generated, status enabled, etag set', async () => {
    const [dev, res] = await call((cb) => registry.create({ deviceId: ids.sas }, cb));
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'], /^application\/json; charset=utf-8$/);
    assert.equal(dev.deviceId, ids.sas);
    assert.equal(dev.status, 'enabled');
    assert.equal(dev.authentication.type, 'sas');
    assert.match(dev.authentication.symmetricKey.primaryKey, /^[A-Za-z0-9+/]{43}=$/);
    assert.match(dev.authentication.symmetricKey.secondaryKey, /^[A-Za-z0-9+/]{43}=$/);
    assert.notEqual(dev.authentication.symmetricKey.primaryKey,
      dev.authentication.symmetricKey.secondaryKey);
    assert.match(dev.generationId, /^[0-9]{18}$/);
    assert.equal(typeof dev.etag, 'string');
    assert.ok(dev.etag.length > 0);
    assert.equal(dev.connectionState, 'Disconnected');
    assert.equal(dev.capabilities.iotEdge, false);
    sasDevice = dev;
  });

  await test('create it again: DeviceAlreadyExistsError (409)', async () => {
    await expectError(registry.create({ deviceId: ids.sas }), 'DeviceAlreadyExistsError', 409);
  });

  await test('get returns the same device', async () => {
    const { responseBody: dev } = await registry.get(ids.sas);
    assert.equal(dev.deviceId, ids.sas);
    assert.equal(dev.generationId, sasDevice.generationId);
    assert.equal(dev.etag, sasDevice.etag);
    assert.deepEqual(dev.authentication.symmetricKey, sasDevice.authentication.symmetricKey);
  });

  await test('update (If-Match "*"): status disabled, keys kept, new etag', async () => {
    const dev = { ...sasDevice, status: 'disabled', statusReason: 'testing' };
    const { responseBody: out } = await registry.update(dev);
    assert.equal(out.status, 'disabled');
    assert.equal(out.statusReason, 'testing');
    assert.equal(out.generationId, sasDevice.generationId);
    assert.deepEqual(out.authentication.symmetricKey, sasDevice.authentication.symmetricKey);
    assert.notEqual(out.etag, sasDevice.etag);
    assert.notEqual(out.statusUpdatedTime, '0001-01-01T00:00:00Z');
    const { responseBody: back } = await registry.update({ ...out, status: 'enabled' });
    assert.equal(back.status, 'enabled');
  });

  await test('get an unknown device: DeviceNotFoundError (404)', async () => {
    const err = await expectError(registry.get('nobody'), 'DeviceNotFoundError', 404);
    assert.match(err.responseBody, /"Message":"ErrorCode:DeviceNotFound;/);
  });

  await test('create a selfSigned device with a thumbprint', async () => {
    const thumb = env('HUB_SELF_THUMBPRINT');
    const { responseBody: dev } = await registry.create({
      deviceId: ids.self,
      authentication: { x509Thumbprint: { primaryThumbprint: thumb.toLowerCase() } },
    });
    assert.equal(dev.authentication.type, 'selfSigned');
    assert.equal(dev.authentication.x509Thumbprint.primaryThumbprint, thumb);
    assert.equal(dev.authentication.x509Thumbprint.secondaryThumbprint, null);
    assert.equal(dev.authentication.symmetricKey.primaryKey, null);
  });

  await test('create a certificateAuthority device', async () => {
    const { responseBody: dev } = await registry.create({
      deviceId: ids.ca, authentication: { type: 'certificateAuthority' },
    });
    assert.equal(dev.authentication.type, 'certificateAuthority');
    assert.equal(dev.authentication.symmetricKey.primaryKey, null);
    assert.equal(dev.authentication.x509Thumbprint.primaryThumbprint, null);
  });

  await test('create an IoT Edge device: capabilities and deviceScope', async () => {
    const { responseBody: dev } = await registry.create({
      deviceId: ids.edge, capabilities: { iotEdge: true },
    });
    assert.equal(dev.capabilities.iotEdge, true);
    assert.equal(dev.deviceScope, `ms-azure-iot-edge://${ids.edge}-${dev.generationId}`);
  });

  await test('list shows every device created', async () => {
    const { responseBody: list } = await registry.list();
    assert.deepEqual(list.map((d) => d.deviceId).sort(), Object.values(ids).sort());
    for (const d of list) assert.equal(typeof d.etag, 'string');
  });

  await test('module identities: add, get, list, update, remove', async () => {
    const { responseBody: m } = await registry.addModule({ deviceId: ids.edge, moduleId: 'mod1' });
    assert.equal(m.moduleId, 'mod1');
    assert.equal(m.deviceId, ids.edge);
    assert.match(m.generationId, /^[0-9]{18}$/);
    assert.equal(m.authentication.type, 'sas');
    assert.match(m.authentication.symmetricKey.primaryKey, /^[A-Za-z0-9+/]{43}=$/);
    await expectError(registry.addModule({ deviceId: ids.edge, moduleId: 'mod1' }),
      'DeviceAlreadyExistsError', 409);
    const { responseBody: got } = await registry.getModule(ids.edge, 'mod1');
    assert.equal(got.generationId, m.generationId);
    assert.equal(got.etag, m.etag);
    await registry.addModule({ deviceId: ids.edge, moduleId: 'mod2', managedBy: 'IotEdge' });
    const { responseBody: list } = await registry.getModulesOnDevice(ids.edge);
    assert.deepEqual(list.map((x) => x.moduleId), ['mod1', 'mod2']);
    assert.equal(list[1].managedBy, 'IotEdge');
    const key = Buffer.alloc(32, 7).toString('base64');
    const { responseBody: up } = await registry.updateModule({
      deviceId: ids.edge, moduleId: 'mod1',
      authentication: { type: 'sas', symmetricKey: { primaryKey: key, secondaryKey: key } },
    }, true);
    assert.equal(up.authentication.symmetricKey.primaryKey, key);
    assert.equal(up.generationId, m.generationId);
    await registry.removeModule(ids.edge, 'mod2');
    // Node raises DeviceNotFoundError only for DeviceNotFound; other 404s are plain errors.
    const err = await expectError(registry.getModule(ids.edge, 'mod2'), 'Error', 404);
    assert.match(err.responseBody, /^\{"Message":"ErrorCode:ModuleNotFound;module \\"mod2\\" does not exist on device/);
  });

  await test('twin: get, update tags and desired properties, versions', async () => {
    const { responseBody: twin } = await registry.getTwin(ids.sas);
    assert.equal(twin.deviceId, ids.sas);
    assert.deepEqual(twin.tags, {});
    assert.equal(twin.properties.desired.$version, 1);
    assert.equal(twin.properties.reported.$version, 1);
    const v0 = twin.version;
    const etag0 = twin.etag;
    // Twin.update changes the twin object itself (properties, tags, etag).
    const { result: t2 } = await twin.update({
      tags: { site: 'lab', rack: { row: 3 } },
      properties: { desired: { interval: 5, nested: { a: 1, b: 2 } } },
    });
    assert.deepEqual(t2.tags, { site: 'lab', rack: { row: 3 } });
    assert.equal(t2.properties.desired.interval, 5);
    assert.deepEqual(t2.properties.desired.nested, { a: 1, b: 2 });
    assert.equal(t2.properties.desired.$version, 2);
    assert.equal(t2.properties.desired.$metadata.interval.$lastUpdatedVersion, 2);
    assert.notEqual(t2.etag, etag0);
    const { responseBody: fresh } = await registry.getTwin(ids.sas);
    assert.equal(fresh.version, v0 + 1);
    assert.equal(fresh.etag, t2.etag);
    // A merge patch: null deletes, other keys stay.
    const { responseBody: t3 } = await registry.updateTwin(ids.sas,
      { properties: { desired: { nested: { a: null } } } }, t2.etag);
    assert.deepEqual(t3.properties.desired.nested, { b: 2 });
    assert.equal(t3.properties.desired.interval, 5);
    assert.equal(t3.properties.desired.$version, 3);
    // The etag of t2 is stale now.
    await expectError(registry.updateTwin(ids.sas, { tags: { x: 1 } }, t2.etag),
      'InvalidEtagError', 412);
  });

  await test('module twin: get and update', async () => {
    const { responseBody: t } = await registry.getModuleTwin(ids.edge, 'mod1');
    assert.equal(t.moduleId, 'mod1');
    const { result: t2 } = await t.update({ properties: { desired: { level: 'debug' } } });
    assert.equal(t2.properties.desired.level, 'debug');
  });

  await test('device sends telemetry with its key (connection string)', async () => {
    const { responseBody: dev } = await registry.get(ids.sas);
    const cs = `HostName=${hubHost};DeviceId=${ids.sas};SharedAccessKey=${dev.authentication.symmetricKey.primaryKey}`;
    const client = Client.fromConnectionString(cs, Http);
    const msg = new Message('{"temperature":21.5}');
    msg.messageId = `m-${run}`;
    msg.contentType = 'application/json';
    msg.properties.add('alert', 'high');
    await sendAndClose(client, msg);
  });

  await test('the device polls for cloud-to-device messages without an error', async () => {
    const { responseBody: dev } = await registry.get(ids.sas);
    const cs = `HostName=${hubHost};DeviceId=${ids.sas};SharedAccessKey=${dev.authentication.symmetricKey.secondaryKey}`;
    const client = Client.fromConnectionString(cs, Http);
    client.setOptions({ http: { receivePolicy: { interval: 0.2 } } });
    const errors = [];
    client.on('error', (e) => errors.push(e));
    client.on('message', () => errors.push(new Error('unexpected message')));
    await call((cb) => client.open(cb));
    await new Promise((r) => setTimeout(r, 800));
    await call((cb) => client.close(cb));
    assert.deepEqual(errors.map(String), []);
  });

  await test('a self-signed X.509 device sends telemetry with its certificate', async () => {
    const client = Client.fromConnectionString(`HostName=${hubHost};DeviceId=${ids.self};x509=true`, Http);
    client.setOptions({ cert: fs.readFileSync(env('HUB_SELF_CERT'), 'utf8'),
      key: fs.readFileSync(env('HUB_SELF_KEY'), 'utf8') });
    const msg = new Message(Buffer.from([0x00, 0x01, 0xfe, 0xff]));
    msg.properties.add('kind', 'binary');
    await sendAndClose(client, msg);
  });

  await test('a CA-signed X.509 device sends telemetry with its chain', async () => {
    const client = Client.fromConnectionString(`HostName=${hubHost};DeviceId=${ids.ca};x509=true`, Http);
    client.setOptions({ cert: fs.readFileSync(env('HUB_CA_CERT'), 'utf8'),
      key: fs.readFileSync(env('HUB_CA_KEY'), 'utf8') });
    await sendAndClose(client, new Message('from a CA device'));
  });

  await test('a device with the wrong key is refused (UnauthorizedError)', async () => {
    const bad = Buffer.alloc(32, 1).toString('base64');
    const client = Client.fromConnectionString(`HostName=${hubHost};DeviceId=${ids.sas};SharedAccessKey=${bad}`, Http);
    await call((cb) => client.open(cb));
    const err = await expectError(call((cb) => client.sendEvent(new Message('x'), cb)),
      'UnauthorizedError');
    await call((cb) => client.close(cb));
    assert.ok(err);
  });

  await test('telemetry list shows each message with its body and properties', async () => {
    const [sas] = telemetry(ids.sas);
    assert.equal(sas.body, '{"temperature":21.5}');
    assert.deepEqual(sas.properties, { alert: 'high' });
    assert.equal(sas.systemProperties.messageId, `m-${run}`);
    assert.equal(sas.systemProperties.contentType, 'application/json');
    assert.equal(sas.systemProperties.connectionDeviceId, ids.sas);
    const [self] = telemetry(ids.self);
    assert.equal(self.bodyBase64, Buffer.from([0x00, 0x01, 0xfe, 0xff]).toString('base64'));
    assert.equal(self.body, null);
    assert.deepEqual(self.properties, { kind: 'binary' });
    const [ca] = telemetry(ids.ca);
    assert.equal(ca.body, 'from a CA device');
    assert.equal(telemetry('nobody').length, 0);
  });

  await test('delete the devices; they are gone, with their modules', async () => {
    for (const id of Object.values(ids)) {
      const res = await registry.delete(id);
      assert.equal(res.httpResponse.statusCode, 204);
    }
    await expectError(registry.get(ids.sas), 'DeviceNotFoundError', 404);
    await expectError(registry.getModulesOnDevice(ids.edge), 'DeviceNotFoundError', 404);
    await expectError(registry.delete(ids.sas), 'DeviceNotFoundError', 404);
  });

  done();
})().catch((err) => {
  diag(err && err.stack ? err.stack : err);
  process.exit(1);
});
