package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func franzClient(bootstrap string, opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(bootstrap)}, opts...)...)
}

// franz-produce TOPIC COUNT PARTITIONS: record i has key k{i}, value franz-{i},
// header src=franz, partition i % PARTITIONS; prints "sent partition offset key".
func franzProduce(bootstrap string, args []string) error {
	topic, count, partitions := args[0], atoi(args[1]), atoi(args[2])
	cl, err := franzClient(bootstrap, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, count)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(i % partitions), Key: []byte(fmt.Sprintf("k%d", i)),
			Value: []byte(fmt.Sprintf("franz-%d", i)), Headers: []kgo.RecordHeader{{Key: "src", Value: []byte("franz")}}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	for _, r := range recs {
		line("sent", r.Partition, r.Offset, string(r.Key))
	}
	return nil
}

func headerString(hs []kgo.RecordHeader) string {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(h.Key + "=" + string(h.Value) + ";")
	}
	return b.String()
}

// readAll reads every partition of topic from the start until expected records
// came, then a quiet second more.
func readAll(bootstrap, topic string, expected int, opts ...kgo.Opt) ([]*kgo.Record, error) {
	cl, err := franzClient(bootstrap, append([]kgo.Opt{kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var got []*kgo.Record
	deadline := time.Now().Add(60 * time.Second)
	quiet := time.Time{}
	for {
		if len(got) >= expected && quiet.IsZero() {
			quiet = time.Now().Add(time.Second)
		}
		stop := deadline
		if !quiet.IsZero() {
			stop = quiet
		}
		if time.Now().After(stop) {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		for _, e := range fs.Errors() {
			if e.Err != context.DeadlineExceeded {
				return nil, fmt.Errorf("fetch %s/%d: %w", e.Topic, e.Partition, e.Err)
			}
		}
		got = append(got, fs.Records()...)
	}
	return got, nil
}

// franz-consume TOPIC EXPECTED ISOLATION: prints "rec partition offset key value headers", then "count N".
func franzConsume(bootstrap string, args []string) error {
	opts := []kgo.Opt{}
	if args[2] == "read_committed" {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	got, err := readAll(bootstrap, args[0], atoi(args[1]), opts...)
	if err != nil {
		return err
	}
	for _, r := range got {
		line("rec", r.Partition, r.Offset, string(r.Key), string(r.Value), headerString(r.Headers))
	}
	line("count", len(got))
	return nil
}

// member is a group consumer with the partitions it holds.
type member struct {
	cl       *kgo.Client
	mu       sync.Mutex
	assigned map[int32]bool
}

func (m *member) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.assigned)
}

// franz-group TOPIC GROUP PARTITIONS RECORDS: two kgo group members
// (cooperative-sticky, kgo's default) split the partitions and consume every
// record; their commits are seen by kadm; the group is described Stable with two
// members; when one leaves the other gets every partition.
func franzGroup(bootstrap string, args []string) error {
	topic, group, partitions, records := args[0], args[1], atoi(args[2]), atoi(args[3])
	if err := produceSpread(bootstrap, topic, partitions, records); err != nil {
		return err
	}
	var seen sync.Map
	newMember := func() (*member, error) {
		m := &member{assigned: map[int32]bool{}}
		cl, err := franzClient(bootstrap, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
				m.mu.Lock()
				for _, p := range a[topic] {
					m.assigned[p] = true
				}
				m.mu.Unlock()
			}),
			kgo.OnPartitionsRevoked(func(ctx context.Context, c *kgo.Client, r map[string][]int32) {
				_ = c.CommitUncommittedOffsets(ctx)
				m.mu.Lock()
				for _, p := range r[topic] {
					delete(m.assigned, p)
				}
				m.mu.Unlock()
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) {
				m.mu.Lock()
				for _, p := range l[topic] {
					delete(m.assigned, p)
				}
				m.mu.Unlock()
			}))
		m.cl = cl
		return m, err
	}
	poll := func(m *member) error {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		fs := m.cl.PollFetches(ctx)
		for _, e := range fs.Errors() {
			if e.Err != context.DeadlineExceeded {
				return fmt.Errorf("fetch: %w", e.Err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) { seen.Store(fmt.Sprintf("%d/%d", r.Partition, r.Offset), true) })
		return nil
	}
	countSeen := func() int {
		n := 0
		seen.Range(func(_, _ any) bool { n++; return true })
		return n
	}
	a, err := newMember()
	if err != nil {
		return err
	}
	defer a.cl.Close()
	if err := eventually(60*time.Second, "A assigned every partition", func() bool {
		_ = poll(a)
		return a.count() == partitions
	}); err != nil {
		return err
	}
	b, err := newMember()
	if err != nil {
		return err
	}
	if err := eventually(60*time.Second, "partitions split and every record consumed", func() bool {
		_ = poll(a)
		_ = poll(b)
		return a.count() > 0 && b.count() > 0 && a.count()+b.count() == partitions && countSeen() == records
	}); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range []*member{a, b} {
		if err := m.cl.CommitUncommittedOffsets(ctx); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	adm := kadm.NewClient(a.cl)
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return fmt.Errorf("fetch offsets: %w", err)
	}
	for p := 0; p < partitions; p++ {
		o, ok := offs.Lookup(topic, int32(p))
		if err := expect(ok && o.At == perPartition(records, partitions, p),
			"committed offset of partition %d: %+v (want %d)", p, o, perPartition(records, partitions, p)); err != nil {
			return err
		}
	}
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("describe groups: %w", err)
	}
	g := gs[group]
	if err := expect(g.Err == nil && g.State == "Stable" && len(g.Members) == 2 && g.Protocol == "cooperative-sticky",
		"described group: err=%v state=%s members=%d protocol=%s", g.Err, g.State, len(g.Members), g.Protocol); err != nil {
		return err
	}
	line("split", fmt.Sprintf("a=%d", a.count()), fmt.Sprintf("b=%d", b.count()))
	b.cl.Close() // leaves the group
	return eventually(60*time.Second, "A gets every partition back", func() bool {
		_ = poll(a)
		return a.count() == partitions
	})
}

func produceSpread(bootstrap, topic string, partitions, records int) error {
	cl, err := franzClient(bootstrap, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, records)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: []byte(fmt.Sprintf("v%d", i))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

// franz-txn IN OUT GROUP COUNT: a transaction of five records to OUT is
// aborted; then a GroupTransactSession copies COUNT records from IN to OUT
// upper-cased, committing its group offsets in the transactions. OUT read
// committed holds each value once, in order, and none of the aborted ones.
func franzTxn(bootstrap string, args []string) error {
	in, out, group, count := args[0], args[1], args[2], atoi(args[3])
	if err := produceSpread(bootstrap, in, 1, count); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ab, err := franzClient(bootstrap, kgo.TransactionalID("franz-abort-"+group), kgo.DefaultProduceTopic(out))
	if err != nil {
		return err
	}
	if err := ab.BeginTransaction(); err != nil {
		return err
	}
	for i := 0; i < 5; i++ {
		ab.Produce(ctx, kgo.StringRecord(fmt.Sprintf("ABORTED-%d", i)), nil)
	}
	if err := ab.Flush(ctx); err != nil {
		return err
	}
	if err := ab.EndTransaction(ctx, kgo.TryAbort); err != nil {
		return fmt.Errorf("abort: %w", err)
	}
	ab.Close()
	s, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(bootstrap), kgo.TransactionalID("franz-gts-"+group),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DefaultProduceTopic(out),
		kgo.RequireStableFetchOffsets())
	if err != nil {
		return err
	}
	defer s.Close()
	done := 0
	for done < count {
		if ctx.Err() != nil {
			return fmt.Errorf("processed only %d of %d", done, count)
		}
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fs := s.PollFetches(pctx)
		pcancel()
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		if err := s.Begin(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		for _, r := range recs {
			s.Produce(ctx, kgo.StringRecord(strings.ToUpper(string(r.Value))), nil)
		}
		committed, err := s.End(ctx, kgo.TryCommit)
		if err != nil {
			return fmt.Errorf("end: %w", err)
		}
		if committed {
			done += len(recs)
		}
	}
	// The transaction's offsets become the group's once its markers are written,
	// which Kafka does after EndTxn answers.
	adm := kadm.NewClient(s.Client())
	var o kadm.OffsetResponse
	if err := eventually(10*time.Second, "group's committed offset reaches COUNT", func() bool {
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		o, _ = offs.Lookup(in, 0)
		return o.Err == nil && o.At == int64(count)
	}); err != nil {
		return fmt.Errorf("%w: %+v", err, o)
	}
	got, err := readAll(bootstrap, out, count, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return err
	}
	vals := make([]string, len(got))
	for i, r := range got {
		vals[i] = string(r.Value)
	}
	want := make([]string, count)
	for i := range want {
		want[i] = fmt.Sprintf("V%d", i)
	}
	if err := expect(strings.Join(vals, ",") == strings.Join(want, ","), "OUT read_committed: %v", vals); err != nil {
		return err
	}
	line("txn", count)
	return nil
}

// kadm PREFIX: topics (create, the TopicAlreadyExists error, list, describe,
// partitions), configs (describe, incremental alter), offsets (start, end, by
// time), delete records, groups (list), delete topics, and the brokers.
func kadmScenario(bootstrap string, args []string) error {
	a, b := args[0]+"-a", args[0]+"-b"
	cl, err := franzClient(bootstrap)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ret := "3600000"
	if _, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": &ret}, a); err != nil {
		return fmt.Errorf("create %s: %w", a, err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, b); err != nil {
		return fmt.Errorf("create %s: %w", b, err)
	}
	again, _ := adm.CreateTopic(ctx, 3, 1, nil, a)
	if err := expect(again.Err != nil && strings.Contains(again.Err.Error(), "TOPIC_ALREADY_EXISTS"),
		"creating an existing topic: %v", again.Err); err != nil {
		return err
	}
	// Kafka's brokers learn of new topics from the metadata log a moment after
	// CreateTopics answers: read-after-create is eventually consistent there.
	var td kadm.TopicDetails
	if err := eventually(10*time.Second, "both topics described", func() bool {
		td, err = adm.ListTopics(ctx, a, b)
		return err == nil && td[a].Err == nil && td[b].Err == nil && len(td[a].Partitions) == 3 &&
			len(td[b].Partitions) == 1
	}); err != nil {
		return fmt.Errorf("%w: %+v", err, td)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, a)
	if err != nil {
		return err
	}
	c, err := rc.On(a, nil)
	if err != nil {
		return err
	}
	var got string
	for _, kv := range c.Configs {
		if kv.Key == "retention.ms" {
			got = kv.MaybeValue()
		}
	}
	if err := expect(got == "3600000", "retention.ms as created: %q", got); err != nil {
		return err
	}
	v := "7200000"
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &v}}, a); err != nil {
		return fmt.Errorf("alter configs: %w", err)
	}
	// As with topics, the broker applies a config change from the metadata log.
	if err := eventually(10*time.Second, "retention.ms after SET is 7200000", func() bool {
		rc, err := adm.DescribeTopicConfigs(ctx, a)
		if err != nil {
			return false
		}
		c, err := rc.On(a, nil)
		if err != nil {
			return false
		}
		for _, kv := range c.Configs {
			if kv.Key == "retention.ms" {
				got = kv.MaybeValue()
			}
		}
		return got == "7200000"
	}); err != nil {
		return fmt.Errorf("%w (last %q)", err, got)
	}
	if _, err := adm.UpdatePartitions(ctx, 5, a); err != nil {
		return fmt.Errorf("create partitions: %w", err)
	}
	if err := produceSpread(bootstrap, b, 1, 10); err != nil {
		return err
	}
	ends, err := adm.ListEndOffsets(ctx, b)
	if err != nil {
		return err
	}
	e, _ := ends.Lookup(b, 0)
	if err := expect(e.Offset == 10, "end offset %d, want 10", e.Offset); err != nil {
		return err
	}
	dr, err := adm.DeleteRecords(ctx, kadm.Offsets{b: {0: kadm.Offset{Topic: b, Partition: 0, At: 4, LeaderEpoch: -1}}})
	if err != nil {
		return fmt.Errorf("delete records: %w", err)
	}
	d, _ := dr.Lookup(b, 0)
	if err := expect(d.Err == nil && d.LowWatermark == 4, "delete records: %+v", d); err != nil {
		return err
	}
	starts, err := adm.ListStartOffsets(ctx, b)
	if err != nil {
		return err
	}
	st, _ := starts.Lookup(b, 0)
	if err := expect(st.Offset == 4, "start offset after delete records %d, want 4", st.Offset); err != nil {
		return err
	}
	if _, err := adm.ListGroups(ctx); err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return err
	}
	if err := expect(len(meta.Brokers) == 1 && meta.Cluster != "", "brokers %+v cluster %q", meta.Brokers, meta.Cluster); err != nil {
		return err
	}
	if _, err := adm.DeleteTopics(ctx, a, b); err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	if err := eventually(20*time.Second, "deleted topics gone", func() bool {
		l, err := adm.ListTopics(ctx)
		return err == nil && !l.Has(a) && !l.Has(b)
	}); err != nil {
		return err
	}
	names := []string{}
	for _, br := range meta.Brokers {
		names = append(names, fmt.Sprint(br.NodeID))
	}
	sort.Strings(names)
	line("kadm", "ok", meta.Cluster, strings.Join(names, ","))
	return nil
}
