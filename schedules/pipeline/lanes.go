package pipeline

import (
	"context"
	"sync"

	"github.com/careindex/careindex/loader/store"
)

// staged is what staging one source gave.
type staged struct {
	delivery store.Delivery
	status   string
	err      error
}

// stageAll stages the sources of states at the indexes given and returns
// each one's outcome by index (see stageLanes).
func (r *runner) stageAll(ctx context.Context, states []sourceState, indexes []int) map[int]staged {
	cs, ok := r.opts.Store.(store.ConcurrentStaging)
	return stageLanes(ctx, states, indexes, ok && cs.StagesConcurrently(), func(ctx context.Context, s sourceState) staged {
		var out staged
		out.delivery, out.status, out.err = r.stage(ctx, s.src, s.current)
		return out
	})
}

// stageLanes calls stage for the sources of states at the indexes given,
// in order, and returns each one's outcome by index. Care item sources
// link nothing, so when concurrent is true they are staged on a lane of
// their own beside the person sources: reading a file of care items
// overlaps with linking persons. Person sources always go one at a time
// in configuration order, which keeps linking (and so the patient ids it
// assigns) deterministic. A cancelled ctx stops both lanes before their
// next source; the sources not staged are missing from the result.
func stageLanes(ctx context.Context, states []sourceState, indexes []int, concurrent bool,
	stage func(context.Context, sourceState) staged) map[int]staged {
	out := make(map[int]staged, len(indexes))
	var mu sync.Mutex
	lane := func(idx []int) {
		for _, i := range idx {
			if ctx.Err() != nil {
				return
			}
			s := stage(ctx, states[i])
			mu.Lock()
			out[i] = s
			mu.Unlock()
		}
	}
	var persons, items []int
	for _, i := range indexes {
		if states[i].src.Kind == "care_items" {
			items = append(items, i)
		} else {
			persons = append(persons, i)
		}
	}
	if !concurrent || len(items) == 0 || len(persons) == 0 {
		lane(indexes)
		return out
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		lane(items)
	}()
	lane(persons)
	wg.Wait()
	return out
}

// syncProgress serialises calls of a progress callback made by concurrent
// lanes.
func syncProgress(fn func(Progress)) func(Progress) {
	if fn == nil {
		return nil
	}
	var mu sync.Mutex
	return func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		fn(p)
	}
}
