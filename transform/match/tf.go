package match

import (
	"container/heap"
	"sort"
)

// defaultTFCapacity is how many distinct values of a field the frequency
// counters track exactly; beyond it the least frequent are evicted
// (Space-Saving), so memory stays bounded however large the input.
const defaultTFCapacity = 1 << 14

// spaceSaving counts the frequent values of a stream in bounded memory
// (Metwally, Agrawal and El Abbadi's Space-Saving algorithm). While fewer
// than capacity distinct values have been seen the counts are exact; after
// that every value whose true count exceeds total/capacity is tracked,
// with a count too high by at most the evicted minimum.
type spaceSaving struct {
	capacity int
	total    int64
	pos      map[uint64]int // value → index in heap
	heap     ssHeap
}

type ssItem struct {
	value uint64
	count int64
}

type ssHeap struct {
	items []ssItem
	pos   map[uint64]int
}

func (h ssHeap) Len() int           { return len(h.items) }
func (h ssHeap) Less(i, j int) bool { return h.items[i].count < h.items[j].count }
func (h ssHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.pos[h.items[i].value] = i
	h.pos[h.items[j].value] = j
}
func (h *ssHeap) Push(x any) {
	it := x.(ssItem)
	h.pos[it.value] = len(h.items)
	h.items = append(h.items, it)
}
func (h *ssHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	delete(h.pos, it.value)
	return it
}

func newSpaceSaving(capacity int) *spaceSaving {
	pos := map[uint64]int{}
	return &spaceSaving{capacity: capacity, pos: pos, heap: ssHeap{pos: pos}}
}

// add counts one occurrence of v; 0 means "missing" and is not counted.
func (s *spaceSaving) add(v uint64) {
	if v == 0 {
		return
	}
	s.total++
	if i, ok := s.pos[v]; ok {
		s.heap.items[i].count++
		heap.Fix(&s.heap, i)
		return
	}
	if len(s.heap.items) < s.capacity {
		heap.Push(&s.heap, ssItem{value: v, count: 1})
		return
	}
	// evict the minimum: the newcomer inherits its count plus one
	min := s.heap.items[0]
	delete(s.pos, min.value)
	s.heap.items[0] = ssItem{value: v, count: min.count + 1}
	s.pos[v] = 0
	heap.Fix(&s.heap, 0)
}

// full reports whether values have been evicted (counts are estimates).
func (s *spaceSaving) full() bool { return len(s.heap.items) >= s.capacity }

// minCount returns the smallest tracked count (0 when nothing is tracked).
func (s *spaceSaving) minCount() int64 {
	if len(s.heap.items) == 0 {
		return 0
	}
	return s.heap.items[0].count
}

// top returns the tracked values with their counts, most frequent first,
// at most k of them.
func (s *spaceSaving) top(k int) []ssItem {
	out := append([]ssItem(nil), s.heap.items...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].count != out[j].count {
			return out[i].count > out[j].count
		}
		return out[i].value < out[j].value
	})
	if len(out) > k {
		out = out[:k]
	}
	return out
}

// minTFRecords is the fewest records with a field present whose value
// frequencies are trusted: in a handful of records every value looks common.
const minTFRecords = 1000

// TermFrequencies is a field's table of value frequencies: the share of
// records that carry each of the field's most common values. Values not in
// the table are taken to have frequency Default.
type TermFrequencies struct {
	Records int64              `json:"records"` // records counted (with the field present)
	Default float64            `json:"default"` // frequency of a value not listed
	Values  map[string]float64 `json:"values"`  // normalised value → share of records
}

// tfLookup gives the frequency of a field value in a dataset's keys.
type tfLookup struct {
	freq map[uint64]float64
	def  float64
}

// datasetTF builds a lookup from the dataset's own counts.
func (d *Dataset) datasetTF(f int) *tfLookup {
	c := d.counts[f]
	if c == nil || c.total < minTFRecords {
		return nil
	}
	t := &tfLookup{freq: make(map[uint64]float64, len(c.heap.items))}
	n := float64(c.total)
	for _, it := range c.heap.items {
		t.freq[it.value] = float64(it.count) / n
	}
	t.def = 1 / n
	if c.full() {
		t.def = float64(c.minCount()) / n
	}
	return t
}

// valueKey returns the dataset key of a field value as it appears in a
// TermFrequencies table, and whether the dataset has it at all.
func (d *Dataset) valueKey(f int, v string) (uint64, bool) {
	switch f {
	case fFamily, fGiven:
		id, ok := d.nameIdx[v]
		return uint64(id), ok && id != 0
	case fDOB:
		x := parseDOB(v)
		return uint64(x), x != 0
	case fPostcode:
		id, ok := d.pcIdx[parsePostcode(v)]
		return uint64(id), ok
	}
	return 0, false
}

// valueString returns the table form of a dataset key (see valueKey).
func (d *Dataset) valueString(f int, key uint64) string {
	switch f {
	case fFamily, fGiven:
		return d.names[key].s
	case fDOB:
		return formatDOB(uint32(key))
	case fPostcode:
		if p := d.pcs[key]; p.kind != pcOpaqueHashed {
			return string(p.appendDisplay(nil))
		}
	}
	return ""
}

func formatDOB(v uint32) string {
	b := []byte("0000-00-00")
	y, m, dd := v/10000, v/100%100, v%100
	b[0], b[1], b[2], b[3] = byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10)
	b[5], b[6] = byte('0'+m/10), byte('0'+m%10)
	b[8], b[9] = byte('0'+dd/10), byte('0'+dd%10)
	return string(b)
}

// tableTF builds a lookup for field f from a model's table.
func (d *Dataset) tableTF(f int, t *TermFrequencies) *tfLookup {
	l := &tfLookup{freq: make(map[uint64]float64, len(t.Values)), def: t.Default}
	for v, fr := range t.Values {
		if k, ok := d.valueKey(f, v); ok {
			l.freq[k] = fr
		}
	}
	return l
}

// tables exports the dataset's frequency tables, at most k values a field.
// Postcode frequencies are kept by their postcode string.
func (d *Dataset) tables(k int) map[string]*TermFrequencies {
	out := map[string]*TermFrequencies{}
	for _, f := range tfFields {
		c := d.counts[f]
		if c == nil || c.total < minTFRecords {
			continue
		}
		t := &TermFrequencies{Records: c.total, Values: map[string]float64{}}
		n := float64(c.total)
		items := c.top(k)
		for _, it := range items {
			s := d.valueString(f, it.value)
			if s != "" {
				t.Values[s] = float64(it.count) / n
			}
		}
		t.Default = 1 / n
		if c.full() || len(items) < len(c.heap.items) {
			t.Default = float64(items[len(items)-1].count) / n
		}
		out[fieldDefs[f].name] = t
	}
	return out
}

// appendDisplay appends a postcode in the form keys and TermFrequencies
// tables keep it: "SW1A 2AA" for UK postcodes, the compact code otherwise.
func (p *pcode) appendDisplay(buf []byte) []byte {
	if p.kind == pcUK {
		return append(append(append(buf, p.b[:p.out]...), ' '), p.b[p.out:p.n]...)
	}
	return append(buf, p.b[:p.n]...)
}
