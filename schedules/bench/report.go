package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText prints the report as plain tables.
func (r Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	m := r.Machine
	how := "generated in " + fmt.Sprintf("%.1f s", r.GenerateSeconds)
	if r.RegionReused {
		how = "reused"
	}
	fmt.Fprintf(ew, "careindex bench: %d patients (seed %d, %d organisations), region %s (%s)\n", r.Patients, r.Seed, r.Orgs, r.Region, how)
	fmt.Fprintf(ew, "machine: %d CPUs", m.CPUs)
	if m.CPUModel != "" {
		fmt.Fprintf(ew, " (%s)", m.CPUModel)
	}
	if m.MemTotalBytes > 0 {
		fmt.Fprintf(ew, ", %s RAM", size(m.MemTotalBytes))
	}
	fmt.Fprintf(ew, ", %s, %s, PostgreSQL %s, SQLite %s\n", m.OS, m.GoVersion, m.PostgreSQL, m.SQLite)
	for _, n := range r.Nights {
		fmt.Fprintf(ew, "%s: %d rows delivered (%d person records, %d care items) for %d people", n.Dir, n.Rows, n.PersonRecords, n.CareItems, n.People)
		if n.Night > 1 {
			fmt.Fprintf(ew, "; %d people changed, %d of %d organisations refreshed", n.Changed, n.Refreshed, r.Orgs)
		}
		fmt.Fprintln(ew)
	}
	if ml := r.MemoryLinkage; ml != nil {
		k := ml.Linkage
		fmt.Fprintf(ew, "linkage engine in memory (night-01, match.Link, no store): %d records read in %.1f s, linked in %.1f s = %.0f records/min (%d pairs scored); precision %.4f  recall %.4f  F1 %.4f\n",
			ml.Records, ml.ReadSeconds, ml.LinkSeconds, ml.RecordsPerMinute, ml.Pairs, k.Precision, k.Recall, k.F1)
		same := "no"
		if ml.OnDisk.Same {
			same = "yes"
		}
		fmt.Fprintf(ew, "linkage engine on disk (night-01, match.LinkOnDisk, records in temporary files): read again and linked in %.1f s; the same result as in memory: %s\n",
			ml.OnDisk.Seconds, same)
	}
	for _, b := range r.Backends {
		fmt.Fprintf(ew, "\n%s  (store %s)\n", b.Backend, b.Store)
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "stage\tseconds\trows read\tread/s\trows published\tpublished/s\tpeak RSS\t")
		sampled := false
		row := func(name string, s Stage) {
			rss := size(s.PeakRSSBytes)
			if s.PeakRSSFrom == rssFromSampled {
				rss += "*"
				sampled = true
			}
			fmt.Fprintf(tw, "%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t\n", name, s.Seconds, count(s.RowsRead), rate(s.RowsRead, s.ReadPerSecond),
				count(s.RowsPublished), rate(s.RowsPublished, s.PublishedPerSecond), rss)
		}
		row("extract (night-01)", b.Extract)
		row("publish (night-01)", b.Publish)
		row("full night (night-01)", b.FullNight)
		row("incremental (night-02)", b.Incremental)
		fmt.Fprintf(tw, "raw load\t%.2f\t-\t-\t%s\t%s\t-\t\n", b.Raw.Seconds, count(b.Raw.RowsTotal), rate(b.Raw.RowsTotal, b.Raw.PublishedPerSecond))
		tw.Flush()
		if sampled {
			fmt.Fprintln(ew, "* peak RSS from VmHWM sampled every 20 ms (the child stayed below the benchmark's own peak, which its ru_maxrss includes)")
		}
		fmt.Fprintf(ew, "full night / raw load: %.1fx   (raw load: %s; %s of files)\n", b.FullOverRaw, b.Raw.Method, size(b.Raw.Bytes))
		p, rc := b.Published, b.Raw.Rows
		same := "equal"
		if !p.SameRows(rc) {
			same = "DIFFERENT"
		}
		fmt.Fprintf(ew, "published v%d: %d patients (%d withheld markers), %d record locations, %d care items, %d organisations; raw-loaded: %d, %d, %d, %d (%s)\n",
			p.Version, p.Patients, p.WithheldMarkers, p.Locations, p.Items, p.Organisations, rc.Patients, rc.Locations, rc.Items, rc.Organisations, same)
		pi := b.PublishedIncremental
		fmt.Fprintf(ew, "incremental v%d: %d patients (%d withheld markers), %d record locations, %d care items, %d organisations\n",
			pi.Version, pi.Patients, pi.WithheldMarkers, pi.Locations, pi.Items, pi.Organisations)
		l := b.Ledger
		balance := "every line balances"
		if !l.Balanced() {
			balance = fmt.Sprintf("%d line(s) DO NOT balance: %s", len(l.Unbalanced), strings.Join(l.Unbalanced, "; "))
		}
		fmt.Fprintf(ew, "ledger: %d runs, %d lines: %d in = %d loaded + %d quarantined + %d withheld + %d merged + %d pending; %s\n",
			l.Runs, l.Lines, l.RowsIn, l.Loaded, l.Quarantined, l.Withheld, l.Merged, l.Pending, balance)
		for _, k := range []Linkage{b.Linkage, b.LinkageIncremental} {
			fmt.Fprintf(ew, "linkage night-%02d: precision %.4f  recall %.4f  F1 %.4f  (%d records, %d patients, %d persons; pairs: %d predicted, %d true, %d both",
				k.Night, k.Precision, k.Recall, k.F1, k.Records, k.Patients, k.Persons, k.PredictedPairs, k.TruePairs, k.TruePositivePairs)
			if k.Unknown > 0 {
				fmt.Fprintf(ew, "; %d records not in the truth", k.Unknown)
			}
			fmt.Fprintln(ew, ")")
		}
	}
	if len(r.Kept) > 0 {
		fmt.Fprintf(ew, "\nkept: %s\n", strings.Join(r.Kept, ", "))
	}
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func count(n int64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%d", n)
}

func rate(n int64, perSecond float64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", perSecond)
}

// size formats bytes in binary units.
func size(n int64) string {
	switch {
	case n <= 0:
		return "-"
	case n < 1<<20:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
}
