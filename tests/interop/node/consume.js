// kafkajs consumer group against strom: node consume.js BOOTSTRAP TOPIC GROUP COUNT
// Prints the consumed values as JSON once COUNT records have arrived.
const { Kafka, logLevel } = require('kafkajs')

async function main () {
  const [bootstrap, topic, groupId, count] = process.argv.slice(2)
  const kafka = new Kafka({ clientId: 'strom-interop-consumer', brokers: [bootstrap], logLevel: logLevel.ERROR })
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const values = []
  const n = parseInt(count, 10)
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${values.length}/${n}`)), 60000)
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        values.push(message.value.toString())
        if (values.length >= n) { clearTimeout(timer); resolve() }
      }
    }).catch(reject)
  })
  await consumer.commitOffsets([]).catch(() => {})
  await consumer.disconnect()
  console.log(JSON.stringify({ values }))
}

main().catch((e) => { console.error(e); process.exit(1) })
