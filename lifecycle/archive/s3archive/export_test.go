package s3archive

// SetPageSize sets ListObjectsV2 MaxKeys, to exercise pagination.
func SetPageSize(s *Store, n int32) { s.pageSize = n }
