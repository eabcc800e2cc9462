package match

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// blockSet is one rule's inverted index: row ordinals sorted by key, and
// the runs that share a key (blocks of 2..maxBlock rows).
type blockSet struct {
	ords    []uint32 // row ordinals, grouped by key; nil when entries holds them
	entries []uint64 // key<<32 | row ordinal, sorted by key, when ords is nil
	blocks  []span   // blocks to compare
	nblocks int      // blocks counted by add, not in blocks
	giant   map[uint32]int
	pairs   int64 // pairs in the compared blocks
	keyed   int   // rows with a key
	skipped int64 // pairs in skipped blocks
}

type span struct{ lo, hi uint32 }

// add adds the counts and giant blocks of a part of the keys to bs, whose
// blocks then only count.
func (bs *blockSet) add(part *blockSet) {
	bs.nblocks += len(part.blocks)
	bs.pairs += part.pairs
	bs.keyed += part.keyed
	bs.skipped += part.skipped
	for k, size := range part.giant {
		if bs.giant == nil {
			bs.giant = map[uint32]int{}
		}
		bs.giant[k] = size
	}
}

// blockCount returns the number of blocks to compare.
func (bs *blockSet) blockCount() int { return len(bs.blocks) + bs.nblocks }

// buildBlocks groups rows by their key under rule r. Blocks of more than
// maxBlock rows are skipped and recorded in giant (key → size).
func buildBlocks(x *ruleIndex, r, maxBlock int) *blockSet {
	n := x.d.Len()
	entries := make([]uint64, 0, n)
	var buf []byte
	for i := range n {
		if k := x.key(r, uint32(i), &buf); k != 0 {
			entries = append(entries, uint64(k)<<32|uint64(i))
		}
	}
	bs := groupBlocks(entries, nil, maxBlock)
	bs.ords = make([]uint32, len(entries))
	for i, e := range entries {
		bs.ords[i] = uint32(e)
	}
	bs.entries = nil
	return bs
}

// groupBlocks sorts entries (key<<32 | row ordinal) and groups them into
// blocks, reusing blocks's memory.
func groupBlocks(entries []uint64, blocks []span, maxBlock int) *blockSet {
	slices.Sort(entries)
	bs := &blockSet{entries: entries, blocks: blocks[:0], keyed: len(entries)}
	for lo := 0; lo < len(entries); {
		k := entries[lo] >> 32
		hi := lo + 1
		for hi < len(entries) && entries[hi]>>32 == k {
			hi++
		}
		size := hi - lo
		switch {
		case size > maxBlock:
			if bs.giant == nil {
				bs.giant = map[uint32]int{}
			}
			bs.giant[uint32(k)] = size
			bs.skipped += int64(size) * int64(size-1) / 2
		case size >= 2:
			bs.blocks = append(bs.blocks, span{uint32(lo), uint32(hi)})
			bs.pairs += int64(size) * int64(size-1) / 2
		}
		lo = hi
	}
	return bs
}

// workers returns the number of goroutines to use.
func workers(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// eachBlock calls fn for every block of bs on nw goroutines; fn gets the
// worker number and the block's row ordinals. It stops early when ctx is
// done or fn fails, and returns the first error.
func eachBlock(ctx context.Context, bs *blockSet, nw int, fn func(w int, block []uint32) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	const chunk = 256
	for w := range nw {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var block []uint32
			for {
				if ctx.Err() != nil {
					return
				}
				start := int(next.Add(chunk)) - chunk
				if start >= len(bs.blocks) {
					return
				}
				end := min(start+chunk, len(bs.blocks))
				for _, s := range bs.blocks[start:end] {
					if bs.ords != nil {
						block = bs.ords[s.lo:s.hi]
					} else {
						block = block[:0]
						for _, e := range bs.entries[s.lo:s.hi] {
							block = append(block, uint32(e))
						}
					}
					if err := fn(w, block); err != nil {
						cancel(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}

// ruleIndex computes rows' blocking keys and remembers which keys' blocks
// were skipped. For every row and rule it keeps an 8-bit fingerprint of
// the key (a byte a record a rule, not the key): two rows whose
// fingerprints differ have different keys; when they are equal the keys
// are computed again to make sure.
type ruleIndex struct {
	d     *Dataset
	rules []compiledRule
	giant []map[uint32]int // per rule: skipped keys → block size
	fp    []uint8          // fp[i*R+r]: fingerprint of row i's key under rule r, 0 none
}

func newRuleIndex(d *Dataset, rules []compiledRule) *ruleIndex {
	x := &ruleIndex{d: d, rules: rules, giant: make([]map[uint32]int, len(rules))}
	R := len(rules)
	x.fp = make([]uint8, d.Len()*R)
	var buf []byte
	for i := range d.Len() {
		for r := range R {
			if k := x.key(r, uint32(i), &buf); k != 0 {
				x.fp[i*R+r] = uint8(k>>24) | 1
			}
		}
	}
	return x
}

// key returns the key hash of row i under rule r, or 0 when it has none.
func (x *ruleIndex) key(r int, i uint32, buf *[]byte) uint32 {
	b, ok := x.d.appendKey((*buf)[:0], &x.rules[r], x.d.row(i))
	*buf = b
	if !ok {
		return 0
	}
	return hashKey(r, b)
}

// sameKey reports whether rows i and j have the same key under rule q.
func (x *ruleIndex) sameKey(q int, i, j uint32, buf *[]byte) (uint32, bool) {
	R := len(x.rules)
	f := x.fp[int(i)*R+q]
	if f == 0 || f != x.fp[int(j)*R+q] {
		return 0, false
	}
	ki := x.key(q, i, buf)
	return ki, ki == x.key(q, j, buf)
}

// comparedBefore reports whether rows i and j were already compared under
// a rule before r: same key, and that block not skipped.
func (x *ruleIndex) comparedBefore(i, j uint32, r int, buf *[]byte) bool {
	for q := range r {
		if k, same := x.sameKey(q, i, j, buf); same {
			if _, big := x.giant[q][k]; !big {
				return true
			}
		}
	}
	return false
}

// mask returns a bit per rule under which rows i and j share a key.
func (x *ruleIndex) mask(i, j uint32, buf *[]byte) uint16 {
	var m uint16
	for q := range x.rules {
		if _, same := x.sameKey(q, i, j, buf); same {
			m |= 1 << q
		}
	}
	return m
}
