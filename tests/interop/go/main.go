// Command interop drives Go's Kafka clients, franz-go (kgo, kadm) and IBM's
// sarama, against a broker for the interop suite (tests/interop/test_go_clients.py):
//
//	interop SCENARIO BOOTSTRAP ARGS...
//
// Each scenario checks Kafka's behaviour itself and prints its findings as
// tab-separated lines on stdout; a failed check prints "FAIL reason" on
// stderr and exits 1.
package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

type scenario func(bootstrap string, args []string) error

var scenarios = map[string]scenario{
	"franz-produce":  franzProduce,
	"franz-consume":  franzConsume,
	"franz-group":    franzGroup,
	"franz-txn":      franzTxn,
	"kadm":           kadmScenario,
	"sarama-produce": saramaProduce,
	"sarama-consume": saramaConsume,
	"sarama-group":   saramaGroup,
	"sarama-admin":   saramaAdmin,
}

func main() {
	if len(os.Args) < 3 {
		names := make([]string, 0, len(scenarios))
		for n := range scenarios {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: interop SCENARIO BOOTSTRAP ARGS...; scenarios: %s\n", strings.Join(names, " "))
		os.Exit(2)
	}
	s, ok := scenarios[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown scenario %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := s(os.Args[2], os.Args[3:]); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL %v\n", err)
		os.Exit(1)
	}
}

// line prints one finding.
func line(words ...any) {
	parts := make([]string, len(words))
	for i, w := range words {
		parts[i] = fmt.Sprint(w)
	}
	fmt.Println(strings.Join(parts, "\t"))
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL not a number: %q\n", s)
		os.Exit(2)
	}
	return n
}

// expect fails with a message when cond does not hold.
func expect(cond bool, format string, a ...any) error {
	if cond {
		return nil
	}
	return fmt.Errorf(format, a...)
}

// eventually polls cond until it holds or the timeout passes.
func eventually(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// perPartition is how many of records spread round-robin over partitions land on p.
func perPartition(records, partitions, p int) int64 {
	n := records / partitions
	if p < records%partitions {
		n++
	}
	return int64(n)
}
