// goref lists what Go's archive/tar reads from a tar archive, the reader moby and
// containerd unpack layers with: one JSON line per entry, then {"end": true} or
// {"error": "..."}. With -write it writes one with Go's tar.Writer instead (what
// docker save, BuildKit and go-containerregistry write layers with), from a JSON spec
// on stdin. tests/images/test_tar_go.py compares patchkit's reader with both.
// Usage: goref ARCHIVE (plain tar; the test decompresses first) | goref -write OUT < SPEC
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

// spec is what -write reads: the format, then the entries in order.
type spec struct {
	Format  string `json:"format"` // "USTAR", "PAX" or "GNU"
	Entries []struct {
		Name   string            `json:"name"`
		Type   string            `json:"type"`
		Link   string            `json:"link"`
		Mode   int64             `json:"mode"`
		UID    int               `json:"uid"`
		GID    int               `json:"gid"`
		Major  int64             `json:"major"`
		Minor  int64             `json:"minor"`
		Data   string            `json:"data"`   // hex
		Xattrs map[string]string `json:"xattrs"` // values in hex, as SCHILY.xattr records
	} `json:"entries"`
}

// write makes the archive of the spec on stdin; a header the format cannot hold is
// {"error": ...} on stdout and exit 0 (the test then drops that example).
func write(out string) {
	var sp spec
	if err := json.NewDecoder(os.Stdin).Decode(&sp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	formats := map[string]tar.Format{"USTAR": tar.FormatUSTAR, "PAX": tar.FormatPAX, "GNU": tar.FormatGNU}
	f, err := os.Create(out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, e := range sp.Entries {
		data, err := hex.DecodeString(e.Data)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		h := &tar.Header{Name: e.Name, Typeflag: e.Type[0], Linkname: e.Link, Mode: e.Mode,
			Uid: e.UID, Gid: e.GID, Devmajor: e.Major, Devminor: e.Minor,
			Size: int64(len(data)), Format: formats[sp.Format]}
		if len(e.Xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				b, err := hex.DecodeString(v)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				h.PAXRecords["SCHILY.xattr."+k] = string(b)
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			json.NewEncoder(os.Stdout).Encode(map[string]string{"error": err.Error()})
			return
		}
		if _, err := tw.Write(data); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	if err := tw.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(`{"written": true}`)
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-write" {
		write(os.Args[2])
		return
	}
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
