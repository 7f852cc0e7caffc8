package supabasetest

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"ariga.io/atlas/schemahcl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// atlasProject mirrors the part of the Atlas CLI's project configuration
// (cmd/atlas/internal/cmdapi/project.go) that atlas.hcl relies on.
type atlasProject struct {
	Envs []*atlasEnv `spec:"env"`
}

type atlasEnv struct {
	Name      string          `spec:"name,name"`
	URL       string          `spec:"url"`
	Dev       string          `spec:"dev"`
	Src       string          `spec:"src"`
	Schemas   []string        `spec:"schemas"`
	Migration *atlasMigration `spec:"migration"`
	schemahcl.DefaultExtension
}

type atlasMigration struct {
	Dir             string `spec:"dir"`
	RevisionsSchema string `spec:"revisions_schema"`
	TxMode          string `spec:"tx_mode"`
	schemahcl.DefaultExtension
}

// TestAtlasHCL evaluates atlas.hcl as the Atlas CLI does (same HCL engine
// and functions, getenv included) and checks that every env is bound to
// the service's schema, with the revisions table inside it.
func TestAtlasHCL(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://postgres:secret@db.example.supabase.co:5432/postgres?sslmode=require")
	t.Setenv("ATLAS_DEV_URL", "postgres://postgres@127.0.0.1:5432/dev?sslmode=disable")
	getenv := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "key", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.StringVal(os.Getenv(args[0].AsString())), nil
		},
	})
	var p atlasProject
	state := schemahcl.New(schemahcl.WithFunctions(map[string]function.Function{"getenv": getenv}))
	require.NoError(t, state.EvalFiles([]string{filepath.Join(RepoRoot(t), "atlas.hcl")}, &p, nil))
	names := map[string]bool{}
	for _, e := range p.Envs {
		names[e.Name] = true
		t.Run(e.Name, func(t *testing.T) {
			for what, raw := range map[string]string{"url": e.URL, "dev": e.Dev} {
				u, err := url.Parse(raw)
				require.NoError(t, err, what)
				assert.Equal(t, schemaName, u.Query().Get("search_path"), "%s must be bound to the schema", what)
				assert.Equal(t, "postgres", u.Scheme, what)
			}
			assert.Equal(t, []string{schemaName}, e.Schemas)
			require.NotNil(t, e.Migration)
			assert.Equal(t, "file://migrations", e.Migration.Dir)
			assert.Equal(t, schemaName, e.Migration.RevisionsSchema)
		})
	}
	assert.Equal(t, map[string]bool{"local": true, "ci": true, "supabase": true}, names)
	for _, e := range p.Envs {
		if e.Name == "supabase" {
			u, _ := url.Parse(e.URL)
			assert.Equal(t, "db.example.supabase.co:5432", u.Host, "DATABASE_URL is kept, with its own parameters")
			assert.Equal(t, "require", u.Query().Get("sslmode"))
			assert.Equal(t, "file", e.Migration.TxMode)
		}
	}
}
