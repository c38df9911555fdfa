//go:build !unix

package enrich

import "io/fs"

func inodeOf(fs.FileInfo) uint64 { return 0 }
