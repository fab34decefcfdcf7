package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/*
var assetFS embed.FS

// assetHandler serves the embedded assets (CSS, SVG icons). They change
// only with the binary, so they may be cached for a day.
func assetHandler() http.Handler {
	sub, _ := fs.Sub(assetFS, "assets") // a constant, existing directory
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		files.ServeHTTP(w, r)
	})
}

// navEntries are the layout's navigation, in order: Nav of a page names
// its entry.
var navEntries = []struct{ Name, Href string }{
	{"Tenants", "/console/tenants"},
	{"Audit", "/console/audit"},
	{"Impersonation", "/console/impersonation"},
	{"Charts", "/console/charts"},
	{"Jobs", "/console/jobs"},
}

// view is what every template gets: the layout's fields and the page's
// own Data.
type view struct {
	Title string
	// Nav is the navigation entry of the page ("" = no navigation, as on
	// the public and "no admin access" pages).
	Nav     string
	NavList []struct{ Name, Href string }
	User    string
	CSRF    string
	Flash   *flash
	Data    any
}

// funcs are the templates' functions. Pages of other files add theirs to
// extraFuncs (chart*.go: chartFuncs).
func funcs() template.FuncMap {
	f := template.FuncMap{
		"time": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"date": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02")
		},
		"join": strings.Join,
		"has": func(list []string, v string) bool {
			for _, x := range list {
				if x == v {
					return true
				}
			}
			return false
		},
	}
	for k, v := range chartFuncs {
		f[k] = v
	}
	return f
}

var (
	tmplOnce sync.Once
	tmpls    map[string]*template.Template
	tmplErr  error
)

// templates parses every page once: layout.html and the partials
// (_*.html) with each page file. A page file defines "title" and
// "content".
func templates() (map[string]*template.Template, error) {
	tmplOnce.Do(func() {
		base, err := template.New("layout.html").Funcs(funcs()).ParseFS(templateFS, "templates/layout.html", "templates/_*.html")
		if err != nil {
			tmplErr = err
			return
		}
		names, _ := fs.Glob(templateFS, "templates/*.html")
		tmpls = map[string]*template.Template{}
		for _, n := range names {
			file := path.Base(n)
			if file == "layout.html" || strings.HasPrefix(file, "_") {
				continue
			}
			t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
			if err != nil {
				tmplErr = err
				return
			}
			tmpls[strings.TrimSuffix(file, ".html")] = t
		}
	})
	return tmpls, tmplErr
}

// render writes page name (templates/name.html) inside the layout. s may
// be nil (public pages); nav "" hides the navigation.
func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, status int, name, nav string, data any) {
	ts, err := templates()
	t := ts[name]
	if err == nil && t == nil {
		err = fmt.Errorf("console: no template %q", name)
	}
	v := view{Nav: nav, Data: data}
	if nav != "" {
		v.NavList = navEntries
	}
	if s != nil {
		v.User, v.CSRF = s.name, s.csrf
		if r.Method == http.MethodGet {
			v.Flash = s.takeFlash()
		}
	}
	var b bytes.Buffer
	if err == nil {
		err = t.ExecuteTemplate(&b, "layout.html", v)
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if err != nil {
		c.log.ErrorContext(r.Context(), "console: render", "page", name, "err", err)
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("internal error: the page could not be shown; the server log has the details\n"))
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// message is the data of the message page.
type message struct {
	Heading, Text string
	Back          string // a link back, or ""
}

// errorPage shows a message page with status. With an admin's session it
// keeps the navigation.
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, s *session, status int, heading, text string) {
	nav := ""
	if s != nil && s.admin {
		nav = "-"
	}
	c.render(w, r, s, status, "message", nav, message{Heading: heading, Text: text})
}

// coming is a page whose content is not built yet.
func (c *Console) coming(w http.ResponseWriter, r *http.Request, s *session, nav string) {
	c.render(w, r, s, http.StatusOK, "coming", nav, message{Heading: nav, Text: "This page is coming."})
}

// redirect ends a change (POST-redirect-GET) with a message for the next
// page.
func (c *Console) redirect(w http.ResponseWriter, r *http.Request, s *session, to string, f *flash) {
	if f != nil {
		s.setFlash(f)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}
