package store

import (
	"context"
	"fmt"
)

// VersionsToRetire lists the published versions a backend should retire
// so that at most keep versions remain (the live one included; keep below
// 2 counts as 2): the newest keep-1 versions in state kept stay, and older
// kept ones go, with every version that was rolled back or superseded by a
// rollback. table is the backend's version table (version, state); the
// list is newest first.
func VersionsToRetire(ctx context.Context, q Querier, table string, keep int) ([]int64, error) {
	keep = max(keep, 2)
	rows, err := q.QueryContext(ctx, `SELECT version, state FROM `+table+`
		WHERE state IN ('kept', 'rolled_back', 'superseded') ORDER BY version DESC`)
	if err != nil {
		return nil, fmt.Errorf("listing kept versions: %w", err)
	}
	defer rows.Close()
	var retired []int64
	kept := 0
	for rows.Next() {
		var v int64
		var state string
		if err := rows.Scan(&v, &state); err != nil {
			return nil, fmt.Errorf("listing kept versions: %w", err)
		}
		if state == "kept" && kept < keep-1 {
			kept++
			continue
		}
		retired = append(retired, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing kept versions: %w", err)
	}
	return retired, nil
}
