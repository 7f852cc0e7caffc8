package main

import (
	"regexp"
	"strings"

	"ariga.io/atlas/sql/schema"
)

// A schema diff cannot tell a rename from a drop plus an add; the Atlas CLI
// patches the changes of RENAME statements with a SQL parser that is not
// part of the library. These expressions recognize the plain PostgreSQL
// forms instead.
var (
	identRE = `(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`
	qnameRE = identRE + `(?:\s*\.\s*` + identRE + `)*`
	alterRE = `(?is)^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(` + qnameRE + `)\s*\*?\s+RENAME\s+`
	endRE   = `\s*;?\s*$`

	reRenameTable      = regexp.MustCompile(alterRE + `TO\s+(` + identRE + `)` + endRE)
	reRenameConstraint = regexp.MustCompile(alterRE + `CONSTRAINT\s+(` + identRE + `)\s+TO\s+(` + identRE + `)` + endRE)
	reRenameColumn     = regexp.MustCompile(alterRE + `(?:COLUMN\s+)?(` + identRE + `)\s+TO\s+(` + identRE + `)` + endRE)
	reRenameIndex      = regexp.MustCompile(`(?is)^\s*ALTER\s+INDEX\s+(?:IF\s+EXISTS\s+)?(` + qnameRE + `)\s+RENAME\s+TO\s+(` + identRE + `)` + endRE)
	reIdent            = regexp.MustCompile(identRE)
)

// fixRenames rewrites the drop/add pairs that the RENAME statement stmt
// produced in changes into rename changes, so that the analyzers see
// renames (BC101, BC102) rather than drops (DS102, DS103, CD101). Changes of
// any other statement are returned as is.
func fixRenames(stmt string, changes schema.Changes) schema.Changes {
	switch {
	case reRenameTable.MatchString(stmt):
		m := reRenameTable.FindStringSubmatch(stmt)
		from, to := lastIdent(m[1]), unquote(m[2])
		i, j := changes.IndexDropTable(from), changes.IndexAddTable(to)
		if i != -1 && j != -1 {
			changes[max(i, j)] = &schema.RenameTable{From: changes[i].(*schema.DropTable).T, To: changes[j].(*schema.AddTable).T}
			changes.RemoveIndex(min(i, j))
		}
	case reRenameConstraint.MatchString(stmt):
		m := reRenameConstraint.FindStringSubmatch(stmt)
		if mt := modifyTable(changes, lastIdent(m[1])); mt != nil {
			renameConstraint(mt, unquote(m[2]), unquote(m[3]))
		}
	case reRenameColumn.MatchString(stmt):
		m := reRenameColumn.FindStringSubmatch(stmt)
		if mt := modifyTable(changes, lastIdent(m[1])); mt != nil {
			renameColumn(mt, unquote(m[2]), unquote(m[3]))
		}
	case reRenameIndex.MatchString(stmt):
		m := reRenameIndex.FindStringSubmatch(stmt)
		from, to := lastIdent(m[1]), unquote(m[2])
		for _, c := range changes {
			if mt, ok := c.(*schema.ModifyTable); ok {
				renameIndex(mt, from, to)
			}
		}
	}
	return changes
}

// modifyTable returns the ModifyTable change of the table name, or nil.
func modifyTable(changes schema.Changes, name string) *schema.ModifyTable {
	for _, c := range changes {
		if mt, ok := c.(*schema.ModifyTable); ok && mt.T.Name == name {
			return mt
		}
	}
	return nil
}

// renameColumn patches a DropColumn/AddColumn pair of mt into a RenameColumn.
func renameColumn(mt *schema.ModifyTable, from, to string) {
	cs := schema.Changes(mt.Changes)
	i, j := cs.IndexDropColumn(from), cs.IndexAddColumn(to)
	if i == -1 || j == -1 {
		return
	}
	cs[max(i, j)] = &schema.RenameColumn{From: cs[i].(*schema.DropColumn).C, To: cs[j].(*schema.AddColumn).C}
	cs.RemoveIndex(min(i, j))
	mt.Changes = cs
}

// renameIndex patches a DropIndex/AddIndex pair of mt into a RenameIndex.
func renameIndex(mt *schema.ModifyTable, from, to string) {
	cs := schema.Changes(mt.Changes)
	i, j := cs.IndexDropIndex(from), cs.IndexAddIndex(to)
	if i == -1 || j == -1 {
		return
	}
	cs[max(i, j)] = &schema.RenameIndex{From: cs[i].(*schema.DropIndex).I, To: cs[j].(*schema.AddIndex).I}
	cs.RemoveIndex(min(i, j))
	mt.Changes = cs
}

// renameConstraint patches a drop/add pair of a foreign key, check or
// unique constraint (an index) of mt into a rename.
func renameConstraint(mt *schema.ModifyTable, from, to string) {
	cs := schema.Changes(mt.Changes)
	if cs.IndexDropIndex(from) != -1 {
		renameIndex(mt, from, to)
		return
	}
	drop, add := -1, -1
	var rename *schema.RenameConstraint
	for k, c := range cs {
		switch c := c.(type) {
		case *schema.DropForeignKey:
			if c.F.Symbol == from {
				drop = k
				rename = renameFrom(rename, c.F)
			}
		case *schema.AddForeignKey:
			if c.F.Symbol == to {
				add = k
				rename = renameTo(rename, c.F)
			}
		case *schema.DropCheck:
			if c.C.Name == from {
				drop = k
				rename = renameFrom(rename, c.C)
			}
		case *schema.AddCheck:
			if c.C.Name == to {
				add = k
				rename = renameTo(rename, c.C)
			}
		}
	}
	if drop == -1 || add == -1 {
		return
	}
	cs[max(drop, add)] = rename
	cs.RemoveIndex(min(drop, add))
	mt.Changes = cs
}

// renameFrom sets the From object of r, allocating it if needed.
func renameFrom(r *schema.RenameConstraint, o schema.Object) *schema.RenameConstraint {
	if r == nil {
		r = &schema.RenameConstraint{}
	}
	r.From = o
	return r
}

// renameTo sets the To object of r, allocating it if needed.
func renameTo(r *schema.RenameConstraint, o schema.Object) *schema.RenameConstraint {
	if r == nil {
		r = &schema.RenameConstraint{}
	}
	r.To = o
	return r
}

// lastIdent returns the unquoted last identifier of a qualified name.
func lastIdent(qname string) string {
	ids := reIdent.FindAllString(qname, -1)
	if len(ids) == 0 {
		return qname
	}
	return unquote(ids[len(ids)-1])
}

// unquote returns the name an identifier denotes: quoted identifiers are
// unquoted, unquoted ones are folded to lower case, as PostgreSQL does.
func unquote(id string) string {
	if len(id) >= 2 && id[0] == '"' && id[len(id)-1] == '"' {
		return strings.ReplaceAll(id[1:len(id)-1], `""`, `"`)
	}
	return strings.ToLower(id)
}
