package s3blob

// SetPageSize sets ListObjectsV2 MaxKeys, to exercise pagination.
func SetPageSize(s *Store, n int32) { s.pageSize = n }

// SetMaxGet lowers the largest object Get returns.
func SetMaxGet(s *Store, n int64) { s.maxGet = n }
