package pipeline

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/config"
)

// laneRecorder is a stage function for stageLanes that records the order
// sources start in and how many run at once.
type laneRecorder struct {
	mu      sync.Mutex
	started []string
	running int
	most    int
	// hold, when set, blocks each stage until both lanes have started a
	// source or a second passes (so a sequential run cannot hang).
	hold     bool
	both     chan struct{}
	once     sync.Once
	persons  bool
	items    bool
	cancel   context.CancelFunc // called when the source named cancelAt starts
	cancelAt string
}

func (l *laneRecorder) stage(ctx context.Context, s sourceState) staged {
	l.mu.Lock()
	l.started = append(l.started, s.src.ID)
	l.running++
	l.most = max(l.most, l.running)
	if s.src.Kind == "care_items" {
		l.items = true
	} else {
		l.persons = true
	}
	if l.persons && l.items {
		l.once.Do(func() { close(l.both) })
	}
	if s.src.ID == l.cancelAt && l.cancel != nil {
		l.cancel()
	}
	l.mu.Unlock()
	if l.hold {
		select {
		case <-l.both:
		case <-time.After(time.Second):
		}
	}
	l.mu.Lock()
	l.running--
	l.mu.Unlock()
	return staged{delivery: store.Delivery{SourceID: s.src.ID}, status: "new"}
}

func TestStageLanes(t *testing.T) {
	srcs := []config.Source{
		{ID: "gp-patients", Kind: "persons"},
		{ID: "gp-problems", Kind: "care_items"},
		{ID: "hosp-patients", Kind: "persons"},
		{ID: "hosp-encounters", Kind: "care_items"},
		{ID: "la-clients", Kind: "persons"},
	}
	states := make([]sourceState, len(srcs))
	for i, s := range srcs {
		states[i] = sourceState{src: s, rank: i}
	}
	all := []int{0, 1, 2, 3, 4}
	tests := []struct {
		name       string
		indexes    []int
		concurrent bool
		cancelAt   string
		// wantPersons is the order person sources must start in.
		wantPersons []string
		wantStaged  []int
		wantMost    int
	}{
		{"one lane in config order", all, false, "", []string{"gp-patients", "hosp-patients", "la-clients"}, all, 1},
		{"items beside persons", all, true, "", []string{"gp-patients", "hosp-patients", "la-clients"}, all, 2},
		{"persons only stay on one lane", []int{0, 2, 4}, true, "", []string{"gp-patients", "hosp-patients", "la-clients"}, []int{0, 2, 4}, 1},
		{"items only stay on one lane", []int{1, 3}, true, "", nil, []int{1, 3}, 1},
		{"a cancelled run stages no further person source", []int{0, 2, 4}, false, "hosp-patients", []string{"gp-patients", "hosp-patients"}, []int{0, 2}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rec := &laneRecorder{hold: tt.concurrent, both: make(chan struct{}), cancelAt: tt.cancelAt, cancel: cancel}
			got := stageLanes(ctx, states, tt.indexes, tt.concurrent, rec.stage)
			var persons []string
			for _, id := range rec.started {
				if src, _ := findSource(srcs, id); src.Kind == "persons" {
					persons = append(persons, id)
				}
			}
			if !slices.Equal(persons, tt.wantPersons) {
				t.Errorf("person sources started %v, want %v", persons, tt.wantPersons)
			}
			var idx []int
			for i, s := range got {
				idx = append(idx, i)
				if s.delivery.SourceID != srcs[i].ID || s.err != nil {
					t.Errorf("result %d = %+v, want source %s without error", i, s, srcs[i].ID)
				}
			}
			slices.Sort(idx)
			if !slices.Equal(idx, tt.wantStaged) {
				t.Errorf("staged %v, want %v", idx, tt.wantStaged)
			}
			if rec.most != tt.wantMost {
				t.Errorf("at most %d sources staged at once, want %d", rec.most, tt.wantMost)
			}
		})
	}
}

func findSource(srcs []config.Source, id string) (config.Source, error) {
	for _, s := range srcs {
		if s.ID == id {
			return s, nil
		}
	}
	return config.Source{}, errors.New("no source " + id)
}

func TestSyncProgressSerialises(t *testing.T) {
	if syncProgress(nil) != nil {
		t.Fatal("syncProgress(nil) is not nil")
	}
	var inside, overlaps, calls int
	var mu sync.Mutex
	fn := syncProgress(func(Progress) {
		mu.Lock()
		inside++
		if inside > 1 {
			overlaps++
		}
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		inside--
		calls++
		mu.Unlock()
	})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				fn(Progress{})
			}
		}()
	}
	wg.Wait()
	if overlaps != 0 || calls != 20 {
		t.Errorf("%d overlapping calls of 20 (%d made), want none", overlaps, calls)
	}
}
