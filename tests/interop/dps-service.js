'use strict';
// azure-iot-provisioning-service 1.11.2 against edgeid's DPS enrollment API:
// individual enrollments and groups (create, read, update with etags,
// delete), attestation mechanisms (keys only there), bulk operations,
// queries with paging. Run by tests/integration/test-dps-interop.sh, which
// starts edgeid-cloud and sets CLOUD_DPS_CONNECTION_STRING,
// NODE_EXTRA_CA_CERTS and DPS_TEST_CERT (a PEM for X.509 enrollments).

const fs = require('node:fs');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { test, done, call, assert } = require('./lib/tap');

// The EK of the Azure Node SDK's provisioning e2e tests (dps-protocol.md §3.2).
const EK =
  'AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEAtKEADl/sNRgm' +
  'YAjP6gXmbccRaJoTnVixisUaek0OwAzFGN70xt9ZOYp6fhIwfcft3fdVKOrKpXYcTe72CGNkGJGlQz5ti9n2pQ0uJhcX' +
  '8aefh4Onm7lVlUCQAVp1K0r6zI8vkEXWsBIvwvxk0eMJbFaq146kbTkJHIGczb89RkFH2TX+CgXeZOG9oXQzUNwktmTU' +
  'acspamune5Wywc/ce8HsDFYchyUHogFhrZ/LPnzyTDXO8sSC5z5dvsUBtUME3iRYDyKgZOfBtmRMqQewD+4iH+ZEJjts' +
  'yJiWR8hFhyKROnOuqXfNFwjd5IcNU4wtlKO0cLyXmTOfQK6Da1pr5Q==';
const KEY1 = Buffer.alloc(32, 1).toString('base64');
const KEY2 = Buffer.alloc(32, 2).toString('base64');

const client = ProvisioningServiceClient.fromConnectionString(process.env.CLOUD_DPS_CONNECTION_STRING);
const certPem = fs.readFileSync(process.env.DPS_TEST_CERT, 'utf8');

// The DPS error body of a failed call, parsed.
function errorBody(err) {
  return JSON.parse(err.responseBody);
}

async function expectError(promise, status, errorCode) {
  try {
    await promise;
  } catch (err) {
    assert.equal(err.response && err.response.statusCode, status, `status of ${err}`);
    if (errorCode) assert.equal(errorBody(err).errorCode, errorCode);
    return err;
  }
  throw new Error(`expected HTTP ${status}, the call succeeded`);
}

async function main() {
  let created;

  await test('create a symmetric-key individual enrollment: keys generated, 200', async () => {
    created = await call((cb) => client.createOrUpdateIndividualEnrollment({
      registrationId: 'svc-sym-1',
      deviceId: 'svc-device-1',
      attestation: { type: 'symmetricKey' },
      capabilities: { iotEdge: true },
      initialTwin: { tags: { site: 'lab' }, properties: { desired: { interval: 5 } } },
    }, cb));
    const keys = created[0].attestation.symmetricKey;
    assert.equal(Buffer.from(keys.primaryKey, 'base64').length, 64);
    assert.equal(Buffer.from(keys.secondaryKey, 'base64').length, 64);
    assert.equal(created[1].statusCode, 200);
    assert.ok(created[0].etag);
    assert.equal(created[0].provisioningStatus, 'enabled');
    assert.equal(created[0].capabilities.iotEdge, true);
  });

  await test('GET does not disclose the keys; the attestation mechanism POST does', async () => {
    const [e] = await call((cb) => client.getIndividualEnrollment('svc-sym-1', cb));
    assert.deepEqual(e.attestation.symmetricKey, {});
    assert.equal(e.deviceId, 'svc-device-1');
    assert.deepEqual(e.initialTwin.tags, { site: 'lab' });
    const [att] = await call((cb) => client.getIndividualEnrollmentAttestationMechanism('svc-sym-1', cb));
    assert.equal(att.type, 'symmetricKey');
    assert.equal(att.symmetricKey.primaryKey, created[0].attestation.symmetricKey.primaryKey);
  });

  await test('update with the current etag keeps the keys, changes the etag', async () => {
    const [e] = await call((cb) => client.getIndividualEnrollment('svc-sym-1', cb));
    e.provisioningStatus = 'disabled';
    const [u] = await call((cb) => client.createOrUpdateIndividualEnrollment(e, cb));
    assert.equal(u.provisioningStatus, 'disabled');
    assert.notEqual(u.etag, e.etag);
    assert.equal(u.attestation.symmetricKey.primaryKey, created[0].attestation.symmetricKey.primaryKey);
    assert.equal(u.createdDateTimeUtc, created[0].createdDateTimeUtc);
  });

  await test('update with a stale etag: 412', async () => {
    const stale = Object.assign({}, created[0], { etag: created[0].etag });
    await expectError(call((cb) => client.createOrUpdateIndividualEnrollment(stale, cb)), 412, 412000);
  });

  await test('delete with a stale etag: 412; with the current one: 204, then 404', async () => {
    await expectError(call((cb) => client.deleteIndividualEnrollment('svc-sym-1', '"nope"', cb)), 412, 412000);
    const [e] = await call((cb) => client.getIndividualEnrollment('svc-sym-1', cb));
    await call((cb) => client.deleteIndividualEnrollment(e, cb));
    const err = await expectError(call((cb) => client.getIndividualEnrollment('svc-sym-1', cb)), 404, 404201);
    assert.equal(errorBody(err).message, 'The enrollment "svc-sym-1" does not exist.');
  });

  await test('TPM individual enrollment keeps the EK; x509 fills the certificate info', async () => {
    const [t] = await call((cb) => client.createOrUpdateIndividualEnrollment({
      registrationId: 'svc-tpm-1', attestation: { type: 'tpm', tpm: { endorsementKey: EK } },
    }, cb));
    assert.equal(t.attestation.tpm.endorsementKey, EK);
    const [x] = await call((cb) => client.createOrUpdateIndividualEnrollment({
      registrationId: 'svc-x509-1',
      attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: certPem } } } },
    }, cb));
    const info = x.attestation.x509.clientCertificates.primary.info;
    assert.match(info.sha1Thumbprint, /^[0-9A-F]{40}$/);
    assert.match(info.sha256Thumbprint, /^[0-9A-F]{64}$/);
    assert.equal(info.subjectName, 'CN=svc-x509-1');
    assert.equal(info.version, 3);
  });

  await test('a malformed EK is refused with the field named', async () => {
    const err = await expectError(call((cb) => client.createOrUpdateIndividualEnrollment({
      registrationId: 'svc-tpm-bad', attestation: { type: 'tpm', tpm: { endorsementKey: 'AAAA' } },
    }, cb)), 400, 400004);
    assert.match(errorBody(err).message, /^attestation\.tpm\.endorsementKey: /);
  });

  await test('enrollment group: create, GET without keys, attestationmechanism (lowercase path)', async () => {
    const [g] = await call((cb) => client.createOrUpdateEnrollmentGroup({
      enrollmentGroupId: 'svc-group-1',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: KEY1, secondaryKey: KEY2 } },
    }, cb));
    assert.equal(g.attestation.symmetricKey.primaryKey, KEY1);
    const [got] = await call((cb) => client.getEnrollmentGroup('svc-group-1', cb));
    assert.deepEqual(got.attestation.symmetricKey, {});
    const [att] = await call((cb) => client.getEnrollmentGroupAttestationMechanism('svc-group-1', cb));
    assert.equal(att.symmetricKey.secondaryKey, KEY2);
    await call((cb) => client.deleteEnrollmentGroup('svc-group-1', got.etag, cb));
    await expectError(call((cb) => client.getEnrollmentGroup('svc-group-1', cb)), 404, 404202);
  });

  await test('bulk: create two, then create again fails per item with 409', async () => {
    const op = {
      mode: 'create',
      enrollments: [
        { registrationId: 'bulk-1', attestation: { type: 'symmetricKey' } },
        { registrationId: 'bulk-2', attestation: { type: 'tpm', tpm: { endorsementKey: EK } } },
      ],
    };
    const [r1] = await call((cb) => client.runBulkEnrollmentOperation(op, cb));
    assert.deepEqual(r1, { isSuccessful: true, errors: [] });
    const [r2] = await call((cb) => client.runBulkEnrollmentOperation(op, cb));
    assert.equal(r2.isSuccessful, false);
    assert.deepEqual(r2.errors.map((e) => [e.registrationId, e.errorCode]), [['bulk-1', 409000], ['bulk-2', 409000]]);
    const [r3] = await call((cb) => client.runBulkEnrollmentOperation({
      mode: 'delete', enrollments: [{ registrationId: 'bulk-1' }, { registrationId: 'bulk-2' }],
    }, cb));
    assert.equal(r3.isSuccessful, true);
  });

  await test('bulk: more than 10 items is refused', async () => {
    const enrollments = [];
    for (let i = 0; i < 11; i++) enrollments.push({ registrationId: `bulk-x-${i}`, attestation: { type: 'symmetricKey' } });
    const err = await expectError(call((cb) => client.runBulkEnrollmentOperation({ mode: 'create', enrollments }, cb)), 400, 400004);
    assert.equal(errorBody(err).message, 'enrollments: expected 1 to 10 items, got 11');
  });

  await test('query: 25 enrollments in pages of 10 come as 10, 10, 5 without duplicates', async () => {
    const ids = [];
    for (let i = 0; i < 25; i++) ids.push(`page-${String(i).padStart(2, '0')}`);
    for (let i = 0; i < ids.length; i += 10) {
      const [r] = await call((cb) => client.runBulkEnrollmentOperation({
        mode: 'create',
        enrollments: ids.slice(i, i + 10).map((id) => ({ registrationId: id, attestation: { type: 'symmetricKey' } })),
      }, cb));
      assert.equal(r.isSuccessful, true);
    }
    const query = client.createIndividualEnrollmentQuery({ query: '*' }, 10);
    const sizes = [];
    const seen = [];
    while (query.hasMoreResults) {
      const [page, response] = await call((cb) => query.next(cb));
      assert.equal(response.statusCode, 200);
      sizes.push(page.length);
      for (const e of page) {
        seen.push(e.registrationId);
        if (e.attestation.symmetricKey) assert.deepEqual(e.attestation.symmetricKey, {});
      }
      if (sizes.length > 10) throw new Error('the query does not end');
    }
    const pageIds = seen.filter((id) => id.startsWith('page-'));
    assert.deepEqual(pageIds, ids);
    assert.equal(new Set(seen).size, seen.length, 'no duplicates');
    // svc-tpm-1 and svc-x509-1 come before the page-* ids: 27 in all.
    assert.deepEqual(sizes, [10, 10, 7]);
  });

  await test('group query comes as one page without a continuation', async () => {
    const [g] = await call((cb) => client.createOrUpdateEnrollmentGroup({
      enrollmentGroupId: 'svc-group-2', attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: certPem } } } },
    }, cb));
    assert.equal(g.attestation.x509.signingCertificates.primary.info.subjectName, 'CN=svc-x509-1');
    const query = client.createEnrollmentGroupQuery({ query: '*' });
    const [page, response] = await call((cb) => query.next(cb));
    assert.equal(query.hasMoreResults, false);
    assert.equal(response.headers['x-ms-continuation'], undefined);
    assert.deepEqual(page.map((x) => x.enrollmentGroupId), ['svc-group-2']);
  });

  await test('a registration state that does not exist: 404', async () => {
    await expectError(call((cb) => client.getDeviceRegistrationState('svc-tpm-1', cb)), 404, 404203);
  });

  await test('a client with a wrong key: 401 401002', async () => {
    const bad = process.env.CLOUD_DPS_CONNECTION_STRING.replace(/SharedAccessKey=[^;]*/, `SharedAccessKey=${KEY2}`);
    const other = ProvisioningServiceClient.fromConnectionString(bad);
    const err = await expectError(call((cb) => other.getIndividualEnrollment('svc-tpm-1', cb)), 401, 401002);
    assert.equal(errorBody(err).message, 'Unauthorized');
  });

  done();
}

main();
