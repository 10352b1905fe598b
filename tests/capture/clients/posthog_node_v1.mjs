// Drives the real posthog-node client in Capture v1 mode (POSTHOG_CAPTURE_MODE=v1, set by
// the test) and its AI lane (captureAi) against an eventplan server.
// usage: node posthog_node_v1.mjs HOST TOKEN PERSON
import { PostHog } from 'posthog-node'

const [host, token, person] = process.argv.slice(2)
const errors = []
const client = new PostHog(token, { host, flushAt: 10, flushInterval: 100 })
client.on('error', (error) => errors.push(String(error)))

const stream = {
  app: 'openchat-server',
  chat_id: 'c-node-v1',
  model_id: 'openai/gpt-4o-mini',
  status: 'completed',
  duration_ms: 640,
  environment: 'production',
}
client.capture({ distinctId: person, event: 'chat_message_stream', properties: stream })
client.capture({
  distinctId: person,
  event: 'chat_message_stream',
  properties: { ...stream, status: 'finished', $session_id: 'node-session' },
})
client.captureAi({
  distinctId: person,
  event: '$ai_generation',
  properties: {
    app: 'openchat-server',
    $ai_model: 'openai/gpt-4o-mini',
    $ai_provider: 'openrouter',
    $ai_input_tokens: 512,
    $ai_output_tokens: 128,
    $ai_latency: 0.64,
    $ai_http_status: 200,
    $ai_trace_id: 'c-node-v1',
    $ai_input: 'x'.repeat(2 * 1024 * 1024),
  },
})
await client.shutdown()
process.stdout.write(JSON.stringify({ errors }) + '\n')
