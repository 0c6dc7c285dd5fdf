// goref lists what Go's archive/tar reads from a tar archive, the reader moby and
// containerd unpack layers with: one JSON line per entry, then {"end": true} or
// {"error": "..."}. tests/images/test_tar_go.py compares patchkit's reader with it.
// Usage: goref ARCHIVE (plain tar; the test decompresses first).
package main

import (
	"archive/tar"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// Contents larger than this are not read (a 60 GB sparse file): "sha1" is "not read".
const maxRead = 1 << 30

type entry struct {
	Name   string            `json:"name"` // hex of the bytes: names need not be UTF-8
	Type   string            `json:"type"`
	Link   string            `json:"link"` // hex, as name
	Size   int64             `json:"size"`
	Mode   int64             `json:"mode"`
	UID    int               `json:"uid"`
	GID    int               `json:"gid"`
	Major  int64             `json:"major"`
	Minor  int64             `json:"minor"`
	Xattrs map[string]string `json:"xattrs"` // SCHILY.xattr.* records, values in hex
	SHA1   string            `json:"sha1"`
}

func main() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			out.Encode(map[string]bool{"end": true})
			return
		}
		if err != nil {
			out.Encode(map[string]string{"error": err.Error()})
			return
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue // moby and containerd ignore global headers
		}
		e := entry{
			Name: hex.EncodeToString([]byte(h.Name)), Type: string([]byte{h.Typeflag}),
			Link: hex.EncodeToString([]byte(h.Linkname)), Size: h.Size, Mode: h.Mode,
			UID: h.Uid, GID: h.Gid, Major: h.Devmajor, Minor: h.Devminor,
			Xattrs: map[string]string{}, SHA1: "not read",
		}
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				e.Xattrs[strings.TrimPrefix(k, "SCHILY.xattr.")] = hex.EncodeToString([]byte(v))
			}
		}
		if h.Size <= maxRead {
			sum := sha1.New()
			if _, err := io.Copy(sum, tr); err != nil {
				out.Encode(map[string]string{"error": err.Error()})
				return
			}
			e.SHA1 = hex.EncodeToString(sum.Sum(nil))
		}
		out.Encode(e)
	}
}
