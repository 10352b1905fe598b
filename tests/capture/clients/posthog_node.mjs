// Drives the real posthog-node client against an eventplan server.
// usage: node posthog_node.mjs HOST TOKEN GUEST MEMBER
import { PostHog } from 'posthog-node'

const [host, token, guest, member] = process.argv.slice(2)
const client = new PostHog(token, { host, flushAt: 3, flushInterval: 100 })

client.capture({
  distinctId: guest,
  event: 'chat.created',
  properties: {
    app: 'openchat-server',
    chat_id: 'c-node-1',
    source: 'sidebar_button',
    storage_backend: 'memory_fallback',
    environment: 'production',
  },
  groups: { workspace: 'ws-node' },
})
client.identify({ distinctId: member, properties: { $anon_distinct_id: guest, email_domain: 'example.com' } })
client.alias({ distinctId: member, alias: `${member}-alias` })
client.groupIdentify({ groupType: 'workspace', groupKey: 'ws-node', properties: { plan: 'team' } })
client.capture({
  distinctId: member,
  event: 'workspace.fallback_storage_used',
  properties: { app: 'openchat-server', operation: 'streamUpsert', fallback_size: 3 },
})
client.capture({
  distinctId: `${member}-alias`,
  event: 'workspace.fallback_storage_used',
  properties: { app: 'openchat-server', operation: 'upsert' },
})
await client.shutdown()
