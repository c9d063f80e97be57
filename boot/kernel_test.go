package boot

import "testing"

func TestParseKernelDepends(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "bookworm", in: "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n", want: "linux-image-6.1.0-56-amd64"},
		{name: "virtual", in: "linux-image-amd64\n  Depends: <linux-image-6.1.0-9-amd64>\n", want: "linux-image-6.1.0-9-amd64"},
		{name: "other deps first", in: "linux-image-amd64\n  Depends: foo\n  Depends: linux-image-6.12.1-amd64\n", want: "linux-image-6.12.1-amd64"},
		{name: "empty", in: "", wantErr: true},
		{name: "no image", in: "linux-image-amd64\n  Recommends: firmware\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseKernelDepends([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseKernelDepends(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseKernelDepends(%q) = %q, want %q", tt.in, got, tt.want)
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
