// kafkajs producer against strom: node produce.js BOOTSTRAP TOPIC COUNT
const { Kafka, CompressionTypes, logLevel } = require('kafkajs')

async function main () {
  const [bootstrap, topic, count] = process.argv.slice(2)
  const kafka = new Kafka({ clientId: 'strom-interop', brokers: [bootstrap], logLevel: logLevel.ERROR })
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
  await admin.disconnect()
  const producer = kafka.producer()
  await producer.connect()
  const n = parseInt(count, 10)
  const offsets = []
  for (let i = 0; i < n; i += 100) {
    const messages = []
    for (let j = i; j < Math.min(n, i + 100); j++) {
      messages.push({ key: `k${j}`, value: `kafkajs-${j}`, headers: { src: 'kafkajs' } })
    }
    const res = await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages })
    offsets.push(res[0].baseOffset)
  }
  await producer.disconnect()
  console.log(JSON.stringify({ offsets }))
}

main().catch((e) => { console.error(e); process.exit(1) })
