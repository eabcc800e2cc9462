package folder

import "errors"

// Sentinel errors.
var (
	// ErrNoDelivery is returned by Find, wrapped with the folder and the
	// pattern, when no regular file in the folder matches the pattern.
	ErrNoDelivery = errors.New("no delivery")
)
