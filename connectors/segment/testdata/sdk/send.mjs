// Sends every kind of call with Segment's official Node SDK to tessera's
// Segment-compatible ingest, then flushes and exits: 0 if every event was
// delivered (the SDK saw 2xx for each batch), 1 otherwise. Run by
// TestOfficialNodeSDK (connectors/segment/sdk_test.go) with
//
//   TESSERA_SEGMENT_HOST  the handler's base URL, e.g. http://127.0.0.1:8080
//   TESSERA_WRITE_KEY     a write key the handler accepts
//
// It prints one JSON line: {"sent": n, "failed": n, "statuses": [...]}.
import { Analytics } from '@segment/analytics-node'

const host = process.env.TESSERA_SEGMENT_HOST
const writeKey = process.env.TESSERA_WRITE_KEY
if (!host || !writeKey) {
  console.error('TESSERA_SEGMENT_HOST and TESSERA_WRITE_KEY must be set')
  process.exit(2)
}

const analytics = new Analytics({
  writeKey,
  host,
  flushAt: 15, // the burst below goes out as several batches
  flushInterval: 100,
  maxRetries: 3,
})

const statuses = []
analytics.on('http_response', (r) => statuses.push(r.status))
let sent = 0
let failed = 0
const done = (err) => {
  if (err) {
    failed++
    console.error('delivery failed:', err)
  }
}
const call = (method, params) => {
  sent++
  analytics[method](params, done)
}

call('identify', {
  userId: 'sdk-user-1',
  anonymousId: 'sdk-anon-1',
  traits: { email: 'jane@example.com', name: 'Jane Doe' },
})
call('track', {
  userId: 'sdk-user-1',
  event: 'Order Completed',
  properties: { order_id: 'o-1', revenue: 42.5, currency: 'EUR' },
})
call('page', {
  anonymousId: 'sdk-anon-1',
  category: 'Docs',
  name: 'Pricing',
  properties: { path: '/pricing' },
})
call('screen', { userId: 'sdk-user-1', name: 'Settings' })
call('group', { userId: 'sdk-user-1', groupId: 'sdk-group-1', traits: { name: 'Initech' } })
call('alias', { userId: 'sdk-user-1', previousId: 'sdk-anon-1' })
for (let i = 0; i < 40; i++) {
  call('track', { anonymousId: `sdk-burst-${i}`, event: 'Burst', properties: { i } })
}

await analytics.closeAndFlush({ timeout: 30000 })
console.log(JSON.stringify({ sent, failed, statuses }))
process.exit(failed === 0 && statuses.length > 0 && statuses.every((s) => s === 200) ? 0 : 1)
