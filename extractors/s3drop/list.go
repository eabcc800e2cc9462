package s3drop

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// each lists every page of the objects directly under the prefix (one
// "folder" level: not folder markers, not keys further down) and calls fn
// for each.
func (b *Bucket) each(ctx context.Context, fn func(Object)) error {
	in := &s3.ListObjectsV2Input{
		Bucket:    aws.String(b.opts.Bucket),
		Delimiter: aws.String("/"),
	}
	if b.prefix != "" {
		in.Prefix = aws.String(b.prefix)
	}
	if b.opts.ListPageSize > 0 {
		in.MaxKeys = aws.Int32(b.opts.ListPageSize)
	}
	pages := s3.NewListObjectsV2Paginator(b.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return b.classify(b.String(), "list", err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasPrefix(key, b.prefix) {
				continue
			}
			name := key[len(b.prefix):]
			if name == "" || strings.ContainsRune(name, '/') {
				continue // a folder marker, or a key further down
			}
			fn(Object{
				Key:          key,
				Name:         name,
				Size:         aws.ToInt64(o.Size),
				ETag:         strings.Trim(aws.ToString(o.ETag), `"`),
				LastModified: aws.ToTime(o.LastModified),
			})
		}
	}
	return nil
}
