package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// embedded holds the pages: web/index.html, web/login.html and
// web/assets/ (CSS and JavaScript modules, no build step).
//
//go:embed web
var embedded embed.FS

// index serves the page of the dashboard, to a logged-in user; others go
// to the login page.
func (d *Dashboard) index(w http.ResponseWriter, r *http.Request) {
	if _, _, err := d.session(r); err != nil {
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	d.page(w, r, "index.html")
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, _, err := d.session(r); err == nil {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	d.page(w, r, "login.html")
}

func (d *Dashboard) page(w http.ResponseWriter, r *http.Request, name string) {
	b, err := fs.ReadFile(d.files, name)
	if err != nil {
		d.log.Error("dashboard page", "page", name, "err", err)
		http.Error(w, "page missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

// asset serves a file of web/assets/: CSS, JavaScript, icons. They hold
// no data, so no session is needed.
func (d *Dashboard) asset(w http.ResponseWriter, r *http.Request) {
	name := path.Clean(strings.TrimPrefix(r.URL.Path, "/ui/"))
	if !strings.HasPrefix(name, "assets/") || strings.Contains(name, "..") {
		http.NotFound(w, r)
		return
	}
	if fi, err := fs.Stat(d.files, name); err != nil || fi.IsDir() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, d.files, name)
}
