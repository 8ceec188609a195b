package migration_test

import (
	"testing"
	"testing/fstest"

	"github.com/surge-commerce/surge/internal/migration"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		files   fstest.MapFS
		want    []int
		wantErr bool
	}{
		{"ordered by version", fstest.MapFS{"m/0002_b.sql": {Data: []byte("B")}, "m/0010_c.sql": {Data: []byte("C")}, "m/0001_a.sql": {Data: []byte("A")}}, []int{1, 2, 10}, false},
		{"no version", fstest.MapFS{"m/init.sql": {}}, nil, true},
		{"zero version", fstest.MapFS{"m/0000_a.sql": {}}, nil, true},
		{"same version twice", fstest.MapFS{"m/0001_a.sql": {}, "m/1_b.sql": {}}, nil, true},
		{"none", fstest.MapFS{}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := migration.Load(tt.files, "m/*.sql")
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if len(ms) != len(tt.want) {
				t.Fatalf("%d migrations, want %d", len(ms), len(tt.want))
			}
			for i, m := range ms {
				if m.Version != tt.want[i] || m.SQL != string(tt.files["m/"+m.Name].Data) {
					t.Errorf("migration %d: %+v", i, m)
				}
			}
		})
	}
}
