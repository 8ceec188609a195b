package catalog

// Tree is the category hierarchy, built once from the flat list and read by
// every page for navigation and breadcrumbs.
type Tree struct {
	all      []Category
	byID     map[int64]int
	bySlug   map[string]int
	children map[int64][]int
}

// NewTree indexes cats, which may come in any order.
func NewTree(cats []Category) *Tree {
	t := &Tree{all: cats, byID: make(map[int64]int, len(cats)), bySlug: make(map[string]int, len(cats)), children: make(map[int64][]int)}
	for i, c := range cats {
		t.byID[c.ID] = i
		t.bySlug[c.Slug] = i
	}
	for i, c := range cats {
		t.children[c.ParentID] = append(t.children[c.ParentID], i)
	}
	return t
}

// All returns every category in the order the store gave them.
func (t *Tree) All() []Category { return t.all }

// Roots returns the top-level categories.
func (t *Tree) Roots() []Category { return t.Children(0) }

// Children returns the direct children of the category with id.
func (t *Tree) Children(id int64) []Category {
	idx := t.children[id]
	out := make([]Category, len(idx))
	for i, j := range idx {
		out[i] = t.all[j]
	}
	return out
}

// BySlug finds a category.
func (t *Tree) BySlug(slug string) (Category, bool) {
	i, ok := t.bySlug[slug]
	if !ok {
		return Category{}, false
	}
	return t.all[i], true
}

// ByID finds a category.
func (t *Tree) ByID(id int64) (Category, bool) {
	i, ok := t.byID[id]
	if !ok {
		return Category{}, false
	}
	return t.all[i], true
}

// Path returns the chain from the root down to the category with id,
// for breadcrumbs; empty if id is unknown. A cycle in bad data ends the walk.
func (t *Tree) Path(id int64) []Category {
	var rev []Category
	seen := map[int64]bool{}
	for id != 0 && !seen[id] {
		seen[id] = true
		c, ok := t.ByID(id)
		if !ok {
			break
		}
		rev = append(rev, c)
		id = c.ParentID
	}
	out := make([]Category, len(rev))
	for i, c := range rev {
		out[len(rev)-1-i] = c
	}
	return out
}
