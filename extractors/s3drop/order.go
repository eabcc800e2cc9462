package s3drop

import "github.com/careindex/careindex/extractors/folder"

// newer reports whether a is a newer delivery than b, by the rule
// folder.Find uses: natural name order, then LastModified, then byte order.
func newer(a, b Object) bool {
	return folder.Newer(a.Name, a.LastModified, b.Name, b.LastModified)
}
