package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

func saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.ClientID = "sarama-interop"
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Return.Errors = true
	return c
}

// sarama-produce TOPIC COUNT PARTITIONS: record i has key k{i}, value
// sarama-{i}, header src=sarama, partition i % PARTITIONS (a SyncProducer, acks=all).
func saramaProduce(bootstrap string, args []string) error {
	topic, count, partitions := args[0], atoi(args[1]), atoi(args[2])
	p, err := sarama.NewSyncProducer([]string{bootstrap}, saramaConfig())
	if err != nil {
		return err
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, count)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Partition: int32(i % partitions),
			Key: sarama.StringEncoder(fmt.Sprintf("k%d", i)), Value: sarama.StringEncoder(fmt.Sprintf("sarama-%d", i)),
			Headers: []sarama.RecordHeader{{Key: []byte("src"), Value: []byte("sarama")}}}
	}
	if err := p.SendMessages(msgs); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	for _, m := range msgs {
		k, _ := m.Key.Encode()
		line("sent", m.Partition, m.Offset, string(k))
	}
	return nil
}

// sarama-consume TOPIC EXPECTED: a partition consumer per partition from the
// oldest offset; prints "rec partition offset key value headers", then "count N".
func saramaConsume(bootstrap string, args []string) error {
	topic, expected := args[0], atoi(args[1])
	c, err := sarama.NewConsumer([]string{bootstrap}, saramaConfig())
	if err != nil {
		return err
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		return err
	}
	msgs := make(chan *sarama.ConsumerMessage, 1024)
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("consume partition %d: %w", p, err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				msgs <- m
			}
		}()
	}
	var got []*sarama.ConsumerMessage
	deadline := time.After(60 * time.Second)
	var quiet <-chan time.Time
loop:
	for {
		if len(got) >= expected && quiet == nil {
			quiet = time.After(time.Second)
		}
		select {
		case m := <-msgs:
			got = append(got, m)
		case <-deadline:
			break loop
		case <-quiet:
			break loop
		}
	}
	for _, m := range got {
		var h strings.Builder
		for _, hd := range m.Headers {
			h.WriteString(string(hd.Key) + "=" + string(hd.Value) + ";")
		}
		line("rec", m.Partition, m.Offset, string(m.Key), string(m.Value), h.String())
	}
	line("count", len(got))
	return nil
}

// groupHandler counts what its member is assigned and consumes.
type groupHandler struct {
	mu       sync.Mutex
	claims   int
	seen     *sync.Map
	ready    chan struct{}
	readyOne sync.Once
}

func (h *groupHandler) Setup(s sarama.ConsumerGroupSession) error {
	n := 0
	for _, ps := range s.Claims() {
		n += len(ps)
	}
	h.mu.Lock()
	h.claims = n
	h.mu.Unlock()
	return nil
}

func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	h.claims = 0
	h.mu.Unlock()
	return nil
}

func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.seen.Store(fmt.Sprintf("%d/%d", m.Partition, m.Offset), true)
		s.MarkMessage(m, "")
	}
	return nil
}

func (h *groupHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.claims
}

// sarama-group TOPIC GROUP PARTITIONS RECORDS STRATEGY: two sarama group
// members (range or sticky) split the partitions and consume every record; the
// marked offsets are committed and listed by the ClusterAdmin; the group is
// described Stable with two members.
func saramaGroup(bootstrap string, args []string) error {
	topic, group, partitions, records, strategy := args[0], args[1], atoi(args[2]), atoi(args[3]), args[4]
	if err := produceSpread(bootstrap, topic, partitions, records); err != nil {
		return err
	}
	cfg := saramaConfig()
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	switch strategy {
	case "range":
		cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	case "sticky":
		cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	default:
		return fmt.Errorf("unknown strategy %q", strategy)
	}
	seen := &sync.Map{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	start := func() (*groupHandler, sarama.ConsumerGroup, error) {
		cg, err := sarama.NewConsumerGroup([]string{bootstrap}, group, cfg)
		if err != nil {
			return nil, nil, err
		}
		h := &groupHandler{seen: seen}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
					fmt.Printf("consume error: %v\n", err)
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
		return h, cg, nil
	}
	ha, cga, err := start()
	if err != nil {
		return err
	}
	defer cga.Close()
	if err := eventually(60*time.Second, "A claims every partition", func() bool { return ha.count() == partitions }); err != nil {
		return err
	}
	hb, cgb, err := start()
	if err != nil {
		return err
	}
	defer cgb.Close()
	countSeen := func() int {
		n := 0
		seen.Range(func(_, _ any) bool { n++; return true })
		return n
	}
	if err := eventually(60*time.Second, "partitions split and every record consumed", func() bool {
		return ha.count() > 0 && hb.count() > 0 && ha.count()+hb.count() == partitions && countSeen() == records
	}); err != nil {
		return err
	}
	adm, err := sarama.NewClusterAdmin([]string{bootstrap}, saramaConfig())
	if err != nil {
		return err
	}
	defer adm.Close()
	if err := eventually(30*time.Second, "every marked offset committed", func() bool {
		offs, err := adm.ListConsumerGroupOffsets(group, nil)
		if err != nil {
			return false
		}
		for p := 0; p < partitions; p++ {
			b := offs.GetBlock(topic, int32(p))
			if b == nil || b.Offset != perPartition(records, partitions, p) {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	ds, err := adm.DescribeConsumerGroups([]string{group})
	if err != nil {
		return err
	}
	if err := expect(len(ds) == 1 && ds[0].State == "Stable" && len(ds[0].Members) == 2,
		"described group: %+v", ds); err != nil {
		return err
	}
	line("split", fmt.Sprintf("a=%d", ha.count()), fmt.Sprintf("b=%d", hb.count()), ds[0].Protocol)
	cancel()
	wg.Wait()
	return nil
}

// sarama-admin PREFIX: the ClusterAdmin creates a topic (and sees
// ErrTopicAlreadyExists the second time), describes it and its configs, alters
// a config incrementally, adds partitions, deletes records, lists groups,
// describes the cluster and deletes the topic.
func saramaAdmin(bootstrap string, args []string) error {
	topic := args[0] + "-s"
	adm, err := sarama.NewClusterAdmin([]string{bootstrap}, saramaConfig())
	if err != nil {
		return err
	}
	defer adm.Close()
	ret := "3600000"
	detail := &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1, ConfigEntries: map[string]*string{"retention.ms": &ret}}
	if err := adm.CreateTopic(topic, detail, false); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	err = adm.CreateTopic(topic, detail, false)
	var te *sarama.TopicError
	if err := expect(errors.As(err, &te) && te.Err == sarama.ErrTopicAlreadyExists, "second create: %v", err); err != nil {
		return err
	}
	// Read-after-create and read-after-alter are eventually consistent in Kafka
	// (brokers apply the metadata log a moment after the controller answers).
	var md []*sarama.TopicMetadata
	if err := eventually(10*time.Second, "topic described with 2 partitions", func() bool {
		md, err = adm.DescribeTopics([]string{topic})
		return err == nil && len(md) == 1 && md[0].Err == sarama.ErrNoError && len(md[0].Partitions) == 2
	}); err != nil {
		return fmt.Errorf("%w: %+v", err, md)
	}
	res := sarama.ConfigResource{Type: sarama.TopicResource, Name: topic}
	value := func() (string, error) {
		entries, err := adm.DescribeConfig(res)
		if err != nil {
			return "", err
		}
		for _, e := range entries {
			if e.Name == "retention.ms" {
				return e.Value, nil
			}
		}
		return "", nil
	}
	if v, err := value(); err != nil || v != "3600000" {
		return fmt.Errorf("retention.ms as created: %q %v", v, err)
	}
	nv := "7200000"
	if err := adm.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
		"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &nv}}, false); err != nil {
		return fmt.Errorf("incremental alter: %w", err)
	}
	if err := eventually(10*time.Second, "retention.ms after SET is 7200000", func() bool {
		v, err := value()
		return err == nil && v == "7200000"
	}); err != nil {
		return err
	}
	if err := adm.CreatePartitions(topic, 3, nil, false); err != nil {
		return fmt.Errorf("create partitions: %w", err)
	}
	if err := produceSpread(bootstrap, topic, 1, 10); err != nil {
		return err
	}
	if err := adm.DeleteRecords(topic, map[int32]int64{0: 4}); err != nil {
		return fmt.Errorf("delete records: %w", err)
	}
	cl, err := sarama.NewClient([]string{bootstrap}, saramaConfig())
	if err != nil {
		return err
	}
	defer cl.Close()
	oldest, err := cl.GetOffset(topic, 0, sarama.OffsetOldest)
	if err != nil {
		return err
	}
	newest, err := cl.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil {
		return err
	}
	if err := expect(oldest == 4 && newest == 10, "offsets after delete records: oldest %d newest %d", oldest, newest); err != nil {
		return err
	}
	if _, err := adm.ListConsumerGroups(); err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	brokers, controller, err := adm.DescribeCluster()
	if err != nil {
		return err
	}
	if err := expect(len(brokers) == 1 && controller >= 0, "cluster: %d brokers, controller %d", len(brokers), controller); err != nil {
		return err
	}
	if err := adm.DeleteTopic(topic); err != nil {
		return fmt.Errorf("delete topic: %w", err)
	}
	line("sarama-admin", "ok", brokers[0].ID())
	return nil
}
