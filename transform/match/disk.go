package match

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// DiskOptions tune LinkOnDisk.
type DiskOptions struct {
	// Dir is where the temporary files go (os.TempDir when empty). They
	// hold patient data: Dir should be as private as the source files. They
	// are removed before LinkOnDisk returns.
	Dir     string
	Workers int // goroutines comparing blocks; default GOMAXPROCS

	// partRecords is how many records' keys are sorted at a time (default
	// 1<<18); tests make it small.
	partRecords int
}

// LinkOnDisk links records as Link does, with the same result, but keeps
// each prepared record in a temporary file instead of memory. Memory is
// then the interned values (names, address words, postcodes: these grow
// with the distinct values, not the records), an offset per record, one
// rule's sorted keys at a time (8 bytes a keyed record) and the pairs that
// link or go to review; blocks are read back from the file as they are
// compared. Use it when the records would not fit comfortably in memory
// with everything else; it is somewhat slower than Link.
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
	return sp.link(ctx, d, c, tw, workers(opts.Workers), keyParts(sp.len(), cmp.Or(opts.partRecords, 1<<18)))
}

// spill is LinkOnDisk's temporary files: every prepared record, one after
// the other, and for every rule a file of each record's key (4 bytes).
type spill struct {
	dir   string
	rec   *os.File
	recW  *bufio.Writer
	keys  []*os.File
	keysW []*bufio.Writer
	base  []uint64   // file offset of record i<<chunkBits
	rel   [][]uint32 // rel[i>>chunkBits][i&chunkMask]: record i's offset from its chunk's base
	n     int        // records written
	size  uint64     // bytes of records written
	rules int
	enc   []byte
}

// A spilled record is a fixed head, the rules' keys, the address word ids,
// the contact details and the record id.
const spillHead = 8 + 4*5 + 3 + 2 + 2

func createSpill(dir string, rules int) (*spill, error) {
	tmp, err := os.MkdirTemp(dir, "careindex-link-")
	if err != nil {
		return nil, fmt.Errorf("match: temporary files: %w", err)
	}
	sp := &spill{dir: tmp, rules: rules}
	open := func(name string) (*os.File, *bufio.Writer, error) {
		f, err := os.OpenFile(filepath.Join(tmp, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("match: temporary files: %w", err)
		}
		return f, bufio.NewWriterSize(f, 1<<16), nil
	}
	if sp.rec, sp.recW, err = open("records"); err != nil {
		return nil, errors.Join(err, sp.remove())
	}
	for r := range rules {
		f, w, err := open(fmt.Sprintf("keys-%02d", r))
		if err != nil {
			return nil, errors.Join(err, sp.remove())
		}
		sp.keys, sp.keysW = append(sp.keys, f), append(sp.keysW, w)
	}
	return sp, nil
}

// remove closes and deletes the files.
func (sp *spill) remove() error {
	var errs []error
	for _, f := range append([]*os.File{sp.rec}, sp.keys...) {
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

// fill prepares every record into d's interned values and writes its row
// and keys to the files, keeping no row in d.
func (sp *spill) fill(ctx context.Context, d *Dataset, recs Records, rules []compiledRule) error {
	x := &ruleIndex{d: d, rules: rules}
	var keyBuf []byte
	var k4 [4]byte
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
		if len(r.ID) > 1<<16-1 {
			return fmt.Errorf("match: record %d: id of %d bytes, longer than 65535", n, len(r.ID))
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
			k := x.key(q, 0, &keyBuf)
			e = binary.LittleEndian.AppendUint32(e, k)
			binary.LittleEndian.PutUint32(k4[:], k)
			if _, err := sp.keysW[q].Write(k4[:]); err != nil {
				return fmt.Errorf("match: writing temporary files: %w", err)
			}
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
	for _, w := range append([]*bufio.Writer{sp.recW}, sp.keysW...) {
		if err := w.Flush(); err != nil {
			return fmt.Errorf("match: writing temporary files: %w", err)
		}
	}
	sp.recW, sp.keysW, sp.enc = nil, nil, nil
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

// decode unpacks a spilled record into a row; its address words and
// contact details are appended to the arenas, and its keys to keys.
func (sp *spill) decode(b []byte, w *row, addr []uint32, contact []byte, keys []uint32) ([]uint32, []byte, []uint32, []byte) {
	le := binary.LittleEndian
	*w = row{nhs: le.Uint64(b), pc: le.Uint32(b[8:]), family: le.Uint32(b[12:]), given: le.Uint32(b[16:]),
		dob: le.Uint32(b[20:]), gp: le.Uint32(b[24:]), sex: b[28], flags: b[29], addrLen: b[30]}
	nContact, nID := int(le.Uint16(b[31:])), int(le.Uint16(b[33:]))
	b = b[spillHead:]
	for q := range sp.rules {
		keys = append(keys, le.Uint32(b[4*q:]))
	}
	b = b[4*sp.rules:]
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

// link blocks, scores and clusters the spilled records, reading each
// block's records back as it compares them.
func (sp *spill) link(ctx context.Context, d *Dataset, c *compiled, tw *thresholdWeights, nw, parts int) (*Result, error) {
	n := sp.len()
	pl := &pairLinker{s: newScorer(c, d, true), tw: tw}
	// comparing needs the interned values, not the indexes and counts
	// that built them
	d.nameIdx, d.tokIdx, d.gpIdx, d.pcIdx, d.counts = nil, nil, nil, nil, [numFields]*spaceSaving{}
	res := &Result{Stats: Stats{Records: n}}
	giant := make([]map[uint32]int, len(c.rules))
	ws := make([]*diskWorker, nw)
	for w := range ws {
		ws[w] = &diskWorker{sp: sp, view: *d, cc: newCmpCache()}
		// the view shares d's interned values, never its row arenas
		v := &ws[w].view
		v.chunks, v.n, v.addr, v.contact, v.ids, v.idEnd, v.buf = nil, 0, nil, nil, nil, nil, nil
	}
	entries := make([]uint64, 0, n/parts+n/parts/4+16)
	var blocks []span
	for r := range c.rules {
		before := compared(ws)
		all := &blockSet{}
		for part := range parts {
			var err error
			if entries, err = sp.ruleKeys(r, part, parts, entries[:0]); err != nil {
				return nil, err
			}
			bs := groupBlocks(entries, blocks, c.maxBlock)
			blocks = bs.blocks
			err = eachBlock(ctx, bs, nw, func(w int, block []uint32) error {
				return ws[w].compareBlock(pl, block, r, giant)
			})
			if err != nil {
				return nil, err
			}
			all.add(bs)
		}
		giant[r] = all.giant
		res.Stats.Rules = append(res.Stats.Rules, ruleStats(c.rules[r].name, all, compared(ws)-before))
	}
	entries, blocks = nil, nil
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
		_, _, _, id := sp.decode(buf, &w, nil, nil, nil)
		return string(id), nil
	}
	if err := cluster(n, found, tw, res, nhsOf, idOf); err != nil {
		return nil, err
	}
	return res, nil
}

// keyParts returns in how many parts, by key, a rule's keys are sorted
// and compared: the keys of per records at a time, in at most eight parts
// (each part reads the rule's key file again).
func keyParts(n, per int) int {
	return min(max((n+per-1)/per, 1), 8)
}

// ruleKeys reads rule r's key file into entries (key<<32 | record): the
// records with a key in the given part of the keys.
func (sp *spill) ruleKeys(r, part, parts int, entries []uint64) ([]uint64, error) {
	if _, err := sp.keys[r].Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("match: reading temporary files: %w", err)
	}
	br := bufio.NewReaderSize(sp.keys[r], 1<<16)
	var k4 [4]byte
	for i := range sp.len() {
		if _, err := io.ReadFull(br, k4[:]); err != nil {
			return nil, fmt.Errorf("match: reading temporary files: %w", err)
		}
		if k := binary.LittleEndian.Uint32(k4[:]); k != 0 && int(uint64(k)*uint64(parts)>>32) == part {
			entries = append(entries, uint64(k)<<32|uint64(i))
		}
	}
	return entries, nil
}

func compared(ws []*diskWorker) int64 {
	var t int64
	for _, w := range ws {
		t += w.compared
	}
	return t
}

// diskWorker compares blocks read back from the spill. Its view is the
// dataset's interned values with the block's rows and their address words
// and contact details in place of the whole dataset's.
type diskWorker struct {
	sp       *spill
	view     Dataset
	rows     []row
	keys     []uint32 // keys[k*rules+q]: the block's k-th record's key under rule q
	buf      []byte
	cc       *cmpCache
	found    []scoredPair
	compared int64
}

// load reads a block's records into the view.
func (w *diskWorker) load(block []uint32) error {
	w.rows = slices.Grow(w.rows[:0], len(block))[:len(block)]
	w.keys, w.view.addr, w.view.contact = w.keys[:0], w.view.addr[:0], w.view.contact[:0]
	for k, i := range block {
		var err error
		if w.buf, err = w.sp.read(i, w.buf); err != nil {
			return err
		}
		w.view.addr, w.view.contact, w.keys, _ = w.sp.decode(w.buf, &w.rows[k], w.view.addr, w.view.contact, w.keys)
	}
	w.view.chunks = w.view.chunks[:0]
	for lo := 0; lo < len(w.rows); lo += 1 << chunkBits {
		w.view.chunks = append(w.view.chunks, w.rows[lo:min(lo+1<<chunkBits, len(w.rows))])
	}
	w.view.n = len(w.rows)
	return nil
}

// compareBlock scores the pairs of one block of rule r that no earlier
// rule compared.
func (w *diskWorker) compareBlock(pl *pairLinker, block []uint32, r int, giant []map[uint32]int) error {
	if err := w.load(block); err != nil {
		return err
	}
	R := w.sp.rules
	for a := range block {
		ra := w.view.row(uint32(a))
		ka := w.keys[a*R : a*R+r]
		for b := a + 1; b < len(block); b++ {
			if r > 0 && comparedBefore(ka, w.keys[b*R:b*R+r], giant) {
				continue
			}
			w.compared++
			w.found = pl.score(&w.view, ra, w.view.row(uint32(b)), block[a], block[b], w.cc, w.found)
		}
	}
	return nil
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
