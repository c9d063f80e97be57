package boot

import "testing"

func TestParseKernelDepends(t *testing.T) {
	tests := []struct {
		name, in, pkg, version string
		wantErr                bool
	}{
		{name: "bookworm", in: "Package: linux-image-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\n",
			pkg: "linux-image-6.1.0-56-amd64", version: "6.1.192-2"},
		{name: "unversioned", in: "Depends: linux-image-6.12.1-amd64\n", pkg: "linux-image-6.12.1-amd64"},
		{name: "list and alternatives", in: "Depends: foo (>= 1), linux-image-6.1.0-9-amd64 (= 6.1.27-1) | bar\n",
			pkg: "linux-image-6.1.0-9-amd64", version: "6.1.27-1"},
		{name: "empty", in: "", wantErr: true},
		{name: "no image", in: "Package: linux-image-amd64\nRecommends: firmware\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkg, version, err := parseKernelDepends([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseKernelDepends(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if pkg != tt.pkg || version != tt.version {
				t.Errorf("parseKernelDepends(%q) = %q, %q; want %q, %q", tt.in, pkg, version, tt.pkg, tt.version)
			}
		})
	}
}

func TestModuleName(t *testing.T) {
	tests := []struct {
		file, name, compression string
		ok                      bool
	}{
		{"fuse.ko", "fuse", "", true},
		{"virtiofs.ko.xz", "virtiofs", ".xz", true},
		{"9p.ko.zst", "9p", ".zst", true},
		{"9pnet.ko.gz", "9pnet", ".gz", true},
		{"modules.dep", "", "", false},
		{".ko", "", "", false},
		{"fuse.ko.bz2", "", "", false},
	}
	for _, tt := range tests {
		name, c, ok := moduleName(tt.file)
		if name != tt.name || c != tt.compression || ok != tt.ok {
			t.Errorf("moduleName(%q) = %q, %q, %v; want %q, %q, %v", tt.file, name, c, ok, tt.name, tt.compression, tt.ok)
		}
	}
}
