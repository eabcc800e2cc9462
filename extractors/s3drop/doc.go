// Package s3drop finds a source's delivery in an S3 bucket (AWS S3 or an
// S3-compatible store such as MinIO, Ceph RGW or versitygw) and streams it,
// the way package folder does for a drop folder.
//
// [Bucket.Find] lists the objects directly under [Options.Prefix] (one
// "folder" level, like folder.Find: keys further down, below another "/", are
// not considered) and picks the newest whose base name matches
// [Options.Pattern], comparing names in natural order (runs of digits by
// numeric value), then by LastModified, then byte order. Names starting with
// a dot are ignored unless the pattern starts with one; keys ending in "/"
// (folder markers) are never deliveries.
//
// Nothing is downloaded whole into memory:
//
//   - [Bucket.Open] returns the object body as a stream (GetObject);
//   - [Bucket.Hash] streams the body through SHA-256 (the same digest
//     folder.Hash gives for the same bytes in a file);
//   - [Bucket.OpenDelimited] feeds the stream to delimited.New;
//   - an Excel workbook cannot be read from a stream (excelize needs random
//     access to the zip directory at the end of the file), so
//     [Bucket.OpenSpooled] copies the object to a file in a new temporary
//     directory, streaming with a fixed buffer (memory stays bounded; disk use
//     is the object's size), and [Bucket.OpenXLSX] reads that file with
//     xlsx.Open and removes it on Close. The spooled file keeps the key's base
//     name, so rows still name "Sheet@book.xlsx".
//
// # Complete deliveries only, once only
//
// [Bucket.FindDelivery] and [Bucket.Check] apply a folder.Completeness
// policy to objects (a marker object, a manifest object, LastModified for
// StableFor), returning the same sentinels as package folder
// ([ErrIncomplete], [ErrManifestMismatch], [ErrBadManifest]). A processed
// delivery is marked with S3 object tags ([Bucket.Tag], PutObjectTagging,
// keeping the object's other tags; [Bucket.Tags] reads them) rather than
// moved.
//
// # Credentials
//
// With [Options.AccessKeyEnv] and [Options.SecretKeyEnv] set, the static
// credentials are read from those environment variables through the lookup
// function given to [New] (the library never reads the environment itself).
// With both empty, the standard AWS credential chain is used (AWS_ACCESS_KEY_ID
// and friends, shared config and credentials files, SSO, web identity, ECS and
// EC2 instance roles). Error messages name the variables, never their values.
//
// Errors wrap sentinels so a caller can tell what went wrong: [ErrCredentials]
// (the store rejected the credentials: InvalidAccessKeyId,
// SignatureDoesNotMatch, AccessDenied and the like), [ErrNoCredentials] (the
// named environment variables are not set), [ErrNoBucket], [ErrNoObject] and
// [ErrNoDelivery] (the same value as folder.ErrNoDelivery).
package s3drop
