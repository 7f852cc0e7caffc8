# atlas.hcl: agentstore's versioned migrations as the Atlas CLI sees them
# (https://atlasgo.io). The service does not need the CLI: `agentstore
# migrate apply|status`, `make migrate-diff` and `make migrate-lint` do the
# same in Go. With the CLI:
#
#   atlas migrate status --env supabase
#   atlas migrate apply  --env supabase
#   atlas migrate lint   --env ci --git-base origin/main
#
# Every env is scoped to ONE schema, var.schema (DB_SCHEMA, "agentstore" by
# default; `--var schema=...` for another): the target URL gets
# search_path=<schema>, so the unqualified migration files land in it and
# nothing else (auth, storage, extensions, realtime, public) is inspected
# or touched, and the revisions table atlas_schema_revisions lives inside
# it, where `agentstore migrate` keeps it too: both tools see the same
# history. On a database that does not have the schema yet, `atlas migrate
# apply` creates it (as the revisions schema) before the first file.
#
# The DEV database is scoped to its own `public` schema instead: it is an
# empty database, and `public` is the one schema every new PostgreSQL
# database has. Atlas replays the unqualified files into it (for lint and
# diff, whose output stays unqualified) and empties it again afterwards. A
# dev URL bound to var.schema fails on an empty database with `schema
# "agentstore" was not found`: Atlas inspects the bound schema before
# running anything.
#
# CONNECTION: migrations MUST use a direct connection or the session-mode
# pooler (Supabase: port 5432), NEVER the transaction-mode pooler (port
# 6543). They rely on session state (an advisory lock, search_path, one
# transaction per file) that a transaction pooler does not keep. Connect as
# the owner of the schema (Supabase: the postgres role), not as the
# service's runtime role (agentstore_app with DB_TENANT_RLS=on).
#
# Environment variables:
#   DATABASE_URL  the database to migrate (postgres://...:5432/postgres)
#   ATLAS_DEV_URL an EMPTY throwaway PostgreSQL database for diff and lint
#                 (`createdb agentstore_dev` is enough; Atlas replays the
#                 migrations in its public schema and cleans it); the
#                 usual docker:// URL does not work on machines without
#                 Docker. `scripts/services.sh -- sh -c 'ATLAS_DEV_URL=
#                 $AGENTSTORE_TEST_PG_URL atlas ...'` gives one.

variable "schema" {
  type    = string
  default = "agentstore"
}

variable "database_url" {
  type    = string
  default = getenv("DATABASE_URL")
}

variable "dev_url" {
  type    = string
  default = getenv("ATLAS_DEV_URL")
}

locals {
  # The dev database, scoped to the public schema an empty database has.
  dev = urlqueryset(var.dev_url, "search_path", "public")
}

# local: a developer's database; diff from the ent schema (`make
# migrate-diff` is the canonical way) and lint against the dev database.
env "local" {
  src = "ent://ent/schema"
  url = urlqueryset(var.database_url, "search_path", var.schema)
  dev = local.dev
  migration {
    dir              = "file://migrations"
    revisions_schema = var.schema
  }
  lint {
    destructive {
      error = true
    }
    data_depend {
      error = true
    }
    incompatible {
      error = true
    }
    condrop {
      error = true
    }
  }
}

# ci: lint the new migration files against a throwaway dev database (what
# `make migrate-lint` does, without squawk's lock rules and the txmode
# checks). It needs no target database.
env "ci" {
  dev = local.dev
  migration {
    dir = "file://migrations"
  }
  lint {
    git {
      base = "origin/main"
    }
    destructive {
      error = true
    }
    data_depend {
      error = true
    }
    incompatible {
      error = true
    }
    condrop {
      error = true
    }
  }
}

# supabase: production. DATABASE_URL is the direct (db.<ref>.supabase.co:5432)
# or session-mode pooler (pooler.supabase.com:5432) URL of the postgres
# role, never port 6543.
env "supabase" {
  url = urlqueryset(var.database_url, "search_path", var.schema)
  dev = local.dev
  migration {
    dir              = "file://migrations"
    revisions_schema = var.schema
    # Like `agentstore migrate apply`: one transaction per file, but for
    # the files whose header says `-- atlas:txmode none` (CREATE INDEX
    # CONCURRENTLY), which run statement by statement.
    tx_mode = "file"
  }
  lint {
    destructive {
      error = true
    }
    data_depend {
      error = true
    }
    incompatible {
      error = true
    }
    condrop {
      error = true
    }
  }
}
