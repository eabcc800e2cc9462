package s3drop

import (
	"errors"
	"fmt"

	"github.com/aws/smithy-go"

	"github.com/careindex/careindex/extractors/folder"
)

// Sentinel errors. Errors wrap them with the bucket, and the prefix and
// pattern or the key where there is one.
var (
	// ErrNoDelivery is returned by Find when no object under the prefix
	// matches the pattern. It is folder.ErrNoDelivery, so a caller that
	// handles a missing folder delivery handles this one too.
	ErrNoDelivery = folder.ErrNoDelivery
	// ErrCredentials means the store rejected the credentials: the access
	// key is unknown (InvalidAccessKeyId), the secret does not match it
	// (SignatureDoesNotMatch), a session token is invalid or expired, or
	// access was denied (AccessDenied: wrong credentials, or credentials
	// without permission to list the bucket or read the object).
	ErrCredentials = errors.New("credentials rejected")
	// ErrNoCredentials is returned by New when Options names environment
	// variables for static credentials and they are not set or empty.
	ErrNoCredentials = errors.New("credentials not set")
	// ErrNoBucket means the bucket does not exist (NoSuchBucket).
	ErrNoBucket = errors.New("no such bucket")
	// ErrNoObject means the key does not exist (NoSuchKey), for example
	// because the object was deleted after Find listed it.
	ErrNoObject = errors.New("no such object")
	// ErrBadOptions marks invalid Options.
	ErrBadOptions = errors.New("invalid s3 options")
)

// credentialCodes are the S3 error codes that mean the request's
// credentials were not accepted.
var credentialCodes = map[string]bool{
	"InvalidAccessKeyId":    true,
	"SignatureDoesNotMatch": true,
	"AccessDenied":          true,
	"InvalidToken":          true,
	"ExpiredToken":          true,
	"TokenRefreshRequired":  true,
	"InvalidSecurity":       true,
	// versitygw answers an unknown access key with this (HTTP 404) rather
	// than InvalidAccessKeyId.
	"XAdminUserNotFound": true,
}

// classify wraps an error from an S3 call with where it happened and, for
// the error codes this package knows, with a sentinel. what is the place
// ("s3://bucket/prefix" or "s3://bucket/key") and op the operation.
func (b *Bucket) classify(what, op string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		switch {
		case credentialCodes[code]:
			return fmt.Errorf("%s: %s: the store rejected the credentials (%s%s): %w",
				what, op, code, b.credHint(), ErrCredentials)
		case code == "NoSuchBucket":
			return fmt.Errorf("%s: %s: bucket %q does not exist at %s: %w", what, op, b.opts.Bucket, b.where(), ErrNoBucket)
		case code == "NoSuchKey":
			return fmt.Errorf("%s: %s: %w", what, op, ErrNoObject)
		}
	}
	return fmt.Errorf("%s: %s: %w", what, op, err)
}

// credHint says where the credentials came from, naming environment
// variables but never their values.
func (b *Bucket) credHint() string {
	if b.opts.AccessKeyEnv != "" {
		return fmt.Sprintf("; check the access key in $%s and the secret key in $%s", b.opts.AccessKeyEnv, b.opts.SecretKeyEnv)
	}
	return "; credentials came from the standard AWS credential chain"
}

// where names the endpoint in errors.
func (b *Bucket) where() string {
	if b.opts.Endpoint != "" {
		return b.opts.Endpoint
	}
	return "AWS region " + b.opts.Region
}
