package match

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
)

// DiskOptions tune LinkOnDisk.
type DiskOptions struct {
	// Dir is where the temporary files go (os.TempDir when empty). They
	// hold patient data: Dir should be as private as the source files. They
	// are removed before LinkOnDisk returns (a process killed meanwhile
	// leaves its careindex-link-* directory behind, 0700, for the operator
	// to delete).
	Dir     string
	Workers int // goroutines comparing blocks; default GOMAXPROCS

	// bucketRecords is about how many records a bucket holds (default
	// 1<<15); tests make it small.
	bucketRecords int
}

// LinkOnDisk links records as Link does, with the same result, but keeps
// each prepared record in a temporary file instead of memory, and groups
// them by each rule's key on disk: for every rule it writes the records
// with a key into buckets by key and then takes the buckets one at a time,
// reading a bucket's records back to sort them by key and compare its
// blocks. Memory is the interned values (names, address words,
// postcodes: these grow with the distinct values, not the records), an
// offset per record, one bucket's records and the pairs that link or go to
// review. Use it when the records would not fit comfortably in memory with
// everything else; it is somewhat slower than Link.
func LinkOnDisk(ctx context.Context, recs Records, model *Model, th Thresholds, opts DiskOptions) (res *Result, err error) {
	c, tw, err := compileWith(model, th)
	if err != nil {
		return nil, err
	}
	sp, err := createSpill(opts.Dir, len(c.rules))
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := sp.remove(); cerr != nil && err == nil {
			res, err = nil, cerr
		}
	}()
	d := newDataset(1)
	if err := sp.fill(ctx, d, recs, c.rules); err != nil {
		return nil, err
	}
	if err := sp.createBuckets(bucketCount(sp.len(), cmp.Or(opts.bucketRecords, 1<<15))); err != nil {
		return nil, err
	}
	return sp.link(ctx, d, c, tw, workers(opts.Workers))
}

// spill is LinkOnDisk's temporary files: every prepared record, one after
// the other, and the buckets a rule's records are grouped in.
type spill struct {
	dir     string
	rec     *os.File
	recW    *bufio.Writer
	buckets []*os.File
	base    []uint64   // file offset of record i<<chunkBits
	rel     [][]uint32 // rel[i>>chunkBits][i&chunkMask]: record i's offset from its chunk's base
	n       int        // records written
	size    uint64     // bytes of records written
	rules   int
	enc     []byte
}

// maxSpilledID is the longest record id LinkOnDisk takes, so that a
// spilled record's length fits in two bytes.
const maxSpilledID = 4096

// A spilled record is a fixed head (NHS number; postcode, names, date of
// birth and practice; sex, flags and the number of address words; the
// lengths of the contact details and of the id), the rules' keys, the
// address word ids, the contact details and the record id.
const spillHead = 8 + 4*5 + 3 + 2 + 2

func createSpill(dir string, rules int) (*spill, error) {
	tmp, err := os.MkdirTemp(dir, "careindex-link-")
	if err != nil {
		return nil, fmt.Errorf("match: temporary files: %w", err)
	}
	sp := &spill{dir: tmp, rules: rules}
	if sp.rec, err = sp.create("records"); err != nil {
		return nil, errors.Join(err, sp.remove())
	}
	sp.recW = bufio.NewWriterSize(sp.rec, 1<<16)
	return sp, nil
}

func (sp *spill) create(name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(sp.dir, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("match: temporary files: %w", err)
	}
	return f, nil
}

// bucketCount returns how many buckets to group n records in, about per
// records each, at most 256 (each is an open file).
func bucketCount(n, per int) int {
	return min(max((n+per-1)/per, 1), 256)
}

func (sp *spill) createBuckets(n int) error {
	for b := range n {
		f, err := sp.create(fmt.Sprintf("bucket-%03d", b))
		if err != nil {
			return err
		}
		sp.buckets = append(sp.buckets, f)
	}
	return nil
}

// remove closes and deletes the files.
func (sp *spill) remove() error {
	var errs []error
	for _, f := range append([]*os.File{sp.rec}, sp.buckets...) {
		if f != nil {
			if err := f.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := os.RemoveAll(sp.dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("match: removing temporary files: %w", err)
	}
	return nil
}

// len returns the number of records written.
func (sp *spill) len() int { return sp.n }

const chunkMask = 1<<chunkBits - 1

// offset returns record i's file offset.
func (sp *spill) offset(i int) uint64 {
	return sp.base[i>>chunkBits] + uint64(sp.rel[i>>chunkBits][i&chunkMask])
}

// fill prepares every record into d's interned values and writes it (its
// row, its key under every rule, its address word ids, contact details and
// id) to the record file, keeping no row in d.
func (sp *spill) fill(ctx context.Context, d *Dataset, recs Records, rules []compiledRule) error {
	x := &ruleIndex{d: d, rules: rules}
	var keyBuf []byte
	for r, err := range recs {
		if err != nil {
			return fmt.Errorf("match: reading records: %w", err)
		}
		n := sp.len()
		if n&chunkMask == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			sp.base = append(sp.base, sp.size)
			sp.rel = append(sp.rel, make([]uint32, 0, 1<<chunkBits))
		}
		if len(r.ID) > maxSpilledID {
			return fmt.Errorf("match: record %d: id of %d bytes, longer than %d", n, len(r.ID), maxSpilledID)
		}
		d.add(r)
		w := d.row(0)
		e := binary.LittleEndian.AppendUint64(sp.enc[:0], w.nhs)
		for _, v := range [...]uint32{w.pc, w.family, w.given, w.dob, w.gp} {
			e = binary.LittleEndian.AppendUint32(e, v)
		}
		e = append(e, w.sex, w.flags, w.addrLen)
		e = binary.LittleEndian.AppendUint16(e, uint16(len(d.contact)))
		e = binary.LittleEndian.AppendUint16(e, uint16(len(d.ids)))
		for q := range rules {
			e = binary.LittleEndian.AppendUint32(e, x.key(q, 0, &keyBuf))
		}
		for _, a := range d.addr {
			e = binary.LittleEndian.AppendUint32(e, a)
		}
		e = append(append(e, d.contact...), d.ids...)
		if _, err := sp.recW.Write(e); err != nil {
			return fmt.Errorf("match: writing temporary files: %w", err)
		}
		sp.enc = e
		c := &sp.rel[len(sp.rel)-1]
		*c = append(*c, uint32(sp.size-sp.base[len(sp.base)-1]))
		sp.n++
		sp.size += uint64(len(e))
		// keep the interned values, drop the row
		d.chunks[0], d.n = d.chunks[0][:0], 0
		d.ids, d.idEnd, d.addr, d.contact = d.ids[:0], d.idEnd[:0], d.addr[:0], d.contact[:0]
	}
	if err := sp.recW.Flush(); err != nil {
		return fmt.Errorf("match: writing temporary files: %w", err)
	}
	sp.recW, sp.enc = nil, nil
	return nil
}

// span returns the file offset and length of record i.
func (sp *spill) span(i uint32) (int64, int) {
	off, end := sp.offset(int(i)), sp.size
	if int(i)+1 < sp.n {
		end = sp.offset(int(i) + 1)
	}
	return int64(off), int(end - off)
}

// read reads record i into buf.
func (sp *spill) read(i uint32, buf []byte) ([]byte, error) {
	off, n := sp.span(i)
	buf = slices.Grow(buf[:0], n)[:n]
	if _, err := sp.rec.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("match: reading temporary files: %w", err)
	}
	return buf, nil
}

// decodeSpilled unpacks a spilled record into a row; its address words and
// contact details are appended to the arenas, and its keys to keys.
func decodeSpilled(b []byte, rules int, w *row, addr []uint32, contact []byte, keys []uint32) ([]uint32, []byte, []uint32, []byte) {
	le := binary.LittleEndian
	*w = row{nhs: le.Uint64(b), pc: le.Uint32(b[8:]), family: le.Uint32(b[12:]), given: le.Uint32(b[16:]),
		dob: le.Uint32(b[20:]), gp: le.Uint32(b[24:]), sex: b[28], flags: b[29], addrLen: b[30]}
	nContact, nID := int(le.Uint16(b[31:])), int(le.Uint16(b[33:]))
	b = b[spillHead:]
	for q := range rules {
		keys = append(keys, le.Uint32(b[4*q:]))
	}
	b = b[4*rules:]
	w.addrOff = uint32(len(addr))
	for k := range int(w.addrLen) {
		addr = append(addr, le.Uint32(b[4*k:]))
	}
	b = b[4*int(w.addrLen):]
	if nContact > 0 {
		w.contact = uint32(len(contact)) + 1
		contact = append(contact, b[:nContact]...)
	}
	return addr, contact, keys, b[nContact : nContact+nID]
}

// link groups the spilled records by every rule's key in turn, scores the
// pairs of each group and clusters them.
func (sp *spill) link(ctx context.Context, d *Dataset, c *compiled, tw *thresholdWeights, nw int) (*Result, error) {
	n := sp.len()
	pl := &pairLinker{s: newScorer(c, d, true), tw: tw}
	// comparing needs the interned values, not the indexes and counts
	// that built them
	d.nameIdx, d.tokIdx, d.gpIdx, d.pcIdx, d.counts = nil, nil, nil, nil, [numFields]*spaceSaving{}
	res := &Result{Stats: Stats{Records: n}}
	giant := make([]map[uint32]int, len(c.rules))
	ws := make([]*diskWorker, nw)
	for w := range ws {
		ws[w] = &diskWorker{rules: sp.rules, view: *d, cc: newCmpCache()}
		// the view shares d's interned values, never its row arenas
		v := &ws[w].view
		v.chunks, v.n, v.addr, v.contact, v.ids, v.idEnd, v.buf = nil, 0, nil, nil, nil, nil, nil
	}
	var g grouper
	for r := range c.rules {
		sizes, err := sp.scatter(ctx, r)
		if err != nil {
			return nil, err
		}
		before := compared(ws)
		all := &blockSet{}
		for b, f := range sp.buckets {
			bs, err := g.read(f, sizes[b], r, c.maxBlock)
			if err != nil {
				return nil, err
			}
			err = eachBlock(ctx, bs, nw, func(w int, block []uint32) error {
				ws[w].compareBlock(pl, &g, block, r, giant)
				return nil
			})
			if err != nil {
				return nil, err
			}
			all.add(bs)
		}
		giant[r] = all.giant
		res.Stats.Rules = append(res.Stats.Rules, ruleStats(c.rules[r].name, all, compared(ws)-before))
	}
	g = grouper{}
	res.Stats.Compared = compared(ws)
	var found []scoredPair
	for _, w := range ws {
		found = append(found, w.found...)
		w.found = nil
	}
	var buf []byte
	nhsOf := func(i uint32) (uint64, error) {
		var err error
		if buf, err = sp.read(i, buf); err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint64(buf), nil
	}
	idOf := func(i int) (string, error) {
		var err error
		if buf, err = sp.read(uint32(i), buf); err != nil {
			return "", err
		}
		var w row
		_, _, _, id := decodeSpilled(buf, sp.rules, &w, nil, nil, nil)
		return string(id), nil
	}
	if err := cluster(n, found, tw, res, nhsOf, idOf); err != nil {
		return nil, err
	}
	return res, nil
}

// bucketHead is the head of a record in a bucket: its number (4 bytes) and
// length (2 bytes).
const bucketHead = 6

// scatter reads the records in order and writes those with a key under
// rule r to the bucket of their key, each after its number and length. It
// returns the bytes written to each bucket.
func (sp *spill) scatter(ctx context.Context, r int) ([]int64, error) {
	ioErr := func(err error) error { return fmt.Errorf("match: temporary files: %w", err) }
	if _, err := sp.rec.Seek(0, io.SeekStart); err != nil {
		return nil, ioErr(err)
	}
	br := bufio.NewReaderSize(sp.rec, 1<<20)
	nb := len(sp.buckets)
	ws := make([]*bufio.Writer, nb)
	for b, f := range sp.buckets {
		if err := f.Truncate(0); err != nil {
			return nil, ioErr(err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, ioErr(err)
		}
		ws[b] = bufio.NewWriterSize(f, max(4<<10, min(64<<10, (4<<20)/nb)))
	}
	sizes := make([]int64, nb)
	var buf []byte
	var head [bucketHead]byte
	for i := range sp.n {
		if i&chunkMask == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		_, size := sp.span(uint32(i))
		buf = slices.Grow(buf[:0], size)[:size]
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, ioErr(err)
		}
		k := binary.LittleEndian.Uint32(buf[spillHead+4*r:])
		if k == 0 {
			continue
		}
		b := int(uint64(k) * uint64(nb) >> 32)
		binary.LittleEndian.PutUint32(head[:], uint32(i))
		binary.LittleEndian.PutUint16(head[4:], uint16(size))
		if _, err := ws[b].Write(head[:]); err != nil {
			return nil, ioErr(err)
		}
		if _, err := ws[b].Write(buf); err != nil {
			return nil, ioErr(err)
		}
		sizes[b] += int64(bucketHead + size)
	}
	for _, w := range ws {
		if err := w.Flush(); err != nil {
			return nil, ioErr(err)
		}
	}
	return sizes, nil
}

// grouper holds one bucket's records grouped by key: the records of the
// blocks to compare, in arena, and the others not at all (a giant block's
// records, say, are never read into memory).
type grouper struct {
	entries []uint64 // key<<32 | index in the bucket
	ords    []uint32 // record number of each index
	offs    []uint32 // offset of each index's record in the bucket file
	sizes   []uint16
	at      []uint32 // offset of each index's record in arena, when loaded
	arena   []byte
	blocks  []span
	need    []uint32
	buf     []byte
}

// read reads a bucket of size bytes and groups its records by their key
// under rule r: the records' heads and keys first, then the records of
// the blocks to compare.
func (g *grouper) read(f *os.File, size int64, r, maxBlock int) (*blockSet, error) {
	ioErr := func(err error) error { return fmt.Errorf("match: temporary files: %w", err) }
	if size > math.MaxUint32 {
		return nil, fmt.Errorf("match: a bucket of rule %d holds %d bytes, more than 4 GiB", r, size)
	}
	g.entries, g.ords, g.offs, g.sizes = g.entries[:0], g.ords[:0], g.offs[:0], g.sizes[:0]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, ioErr(err)
	}
	br := bufio.NewReaderSize(io.LimitReader(f, size), 1<<16)
	var off uint32
	for int64(off) < size {
		var head [bucketHead]byte
		if _, err := io.ReadFull(br, head[:]); err != nil {
			return nil, ioErr(err)
		}
		n := binary.LittleEndian.Uint16(head[4:])
		g.buf = slices.Grow(g.buf[:0], int(n))[:n]
		if _, err := io.ReadFull(br, g.buf); err != nil {
			return nil, ioErr(err)
		}
		k := binary.LittleEndian.Uint32(g.buf[spillHead+4*r:])
		g.entries = append(g.entries, uint64(k)<<32|uint64(len(g.ords)))
		g.ords = append(g.ords, binary.LittleEndian.Uint32(head[:]))
		g.offs = append(g.offs, off+bucketHead)
		g.sizes = append(g.sizes, n)
		off += bucketHead + uint32(n)
	}
	bs := groupBlocks(g.entries, g.blocks, maxBlock)
	g.blocks = bs.blocks
	// the records of the blocks to compare, in the order of the file
	g.at = slices.Grow(g.at[:0], len(g.ords))[:len(g.ords)]
	g.need = g.need[:0]
	for _, s := range bs.blocks {
		for _, e := range bs.entries[s.lo:s.hi] {
			g.need = append(g.need, uint32(e))
		}
	}
	slices.Sort(g.need)
	g.arena = g.arena[:0]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, ioErr(err)
	}
	br.Reset(io.LimitReader(f, size))
	pos := uint32(0)
	for _, x := range g.need {
		if _, err := br.Discard(int(g.offs[x] - pos)); err != nil {
			return nil, ioErr(err)
		}
		g.at[x] = uint32(len(g.arena))
		start := len(g.arena)
		g.arena = slices.Grow(g.arena, int(g.sizes[x]))[:start+int(g.sizes[x])]
		if _, err := io.ReadFull(br, g.arena[start:]); err != nil {
			return nil, ioErr(err)
		}
		pos = g.offs[x] + uint32(g.sizes[x])
	}
	return bs, nil
}

// record returns the bytes of the bucket's record x, which must be in a
// block to compare.
func (g *grouper) record(x uint32) []byte {
	return g.arena[g.at[x] : g.at[x]+uint32(g.sizes[x])]
}

func compared(ws []*diskWorker) int64 {
	var t int64
	for _, w := range ws {
		t += w.compared
	}
	return t
}

// diskWorker compares the blocks of a bucket. Its view is the dataset's
// interned values with the block's rows and their address words and
// contact details in place of the whole dataset's.
type diskWorker struct {
	rules    int
	view     Dataset
	rows     []row
	keys     []uint32 // keys[k*rules+q]: the block's k-th record's key under rule q
	cc       *cmpCache
	found    []scoredPair
	compared int64
}

// load decodes a block's records into the view.
func (w *diskWorker) load(g *grouper, block []uint32) {
	w.rows = slices.Grow(w.rows[:0], len(block))[:len(block)]
	w.keys, w.view.addr, w.view.contact = w.keys[:0], w.view.addr[:0], w.view.contact[:0]
	for k, x := range block {
		w.view.addr, w.view.contact, w.keys, _ = decodeSpilled(g.record(x), w.rules, &w.rows[k], w.view.addr, w.view.contact, w.keys)
	}
	w.view.chunks = w.view.chunks[:0]
	for lo := 0; lo < len(w.rows); lo += 1 << chunkBits {
		w.view.chunks = append(w.view.chunks, w.rows[lo:min(lo+1<<chunkBits, len(w.rows))])
	}
	w.view.n = len(w.rows)
}

// compareBlock scores the pairs of one block of rule r (indexes in the
// grouper's bucket) that no earlier rule compared.
func (w *diskWorker) compareBlock(pl *pairLinker, g *grouper, block []uint32, r int, giant []map[uint32]int) {
	w.load(g, block)
	R := w.rules
	for a := range block {
		ra := w.view.row(uint32(a))
		ka := w.keys[a*R : a*R+r]
		for b := a + 1; b < len(block); b++ {
			if r > 0 && comparedBefore(ka, w.keys[b*R:b*R+r], giant) {
				continue
			}
			w.compared++
			w.found = pl.score(&w.view, ra, w.view.row(uint32(b)), g.ords[block[a]], g.ords[block[b]], w.cc, w.found)
		}
	}
}

// comparedBefore reports whether two records with keys ka and kb under the
// earlier rules shared a block that was compared.
func comparedBefore(ka, kb []uint32, giant []map[uint32]int) bool {
	for q, k := range ka {
		if k != 0 && k == kb[q] {
			if _, big := giant[q][k]; !big {
				return true
			}
		}
	}
	return false
}
