package opsweb_test

import (
	"bytes"
	"context"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium finds Debian's chromium, or fails the test: the status page is
// tested in a real browser, never skipped.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CAREINDEX_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed; the status page is tested in a real headless browser. " +
		"Install it with: apt-get install -y chromium (.ci/run does this), or set CAREINDEX_CHROMIUM to a Chromium binary.")
	return ""
}

// browse runs headless chromium with extra arguments on url and returns
// its standard output.
func browse(t *testing.T, url string, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir(), "--window-size=1280,900"}, extra...)
	cmd := exec.CommandContext(ctx, chromium(t), append(args, url)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(extra, " "), err, errb.String())
	}
	return out.Bytes()
}

// The status page in a real browser: it renders (a screenshot that is not
// blank and shows the page's colours) and says what an operations person
// needs at a glance. Set CAREINDEX_SCREENSHOT=FILE to keep the screenshot.
func TestStatusPageInBrowser(t *testing.T) {
	t.Parallel()
	cfg, st := region(t)
	srv, _ := newServer(t, cfg, st)

	shot := filepath.Join(t.TempDir(), "status.png")
	if keep := os.Getenv("CAREINDEX_SCREENSHOT"); keep != "" {
		shot = keep
	}
	browse(t, srv.URL+"/", "--screenshot="+shot, "--hide-scrollbars")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 900 {
		t.Errorf("screenshot is %dx%d, want 1280x900", b.Dx(), b.Dy())
	}
	colours := map[color.RGBA]int{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 255}]++
		}
	}
	if len(colours) < 50 {
		t.Errorf("screenshot has %d distinct colours: blank or unstyled", len(colours))
	}
	// The header's navy and the failed row's tint are large areas, drawn
	// exactly: the stylesheet was applied and a row is marked as failing.
	for name, c := range map[string]color.RGBA{
		"header navy #12263f": {0x12, 0x26, 0x3f, 255},
		"page background":     {0xf4, 0xf6, 0xf9, 255},
		"failed row #fff8f7":  {0xff, 0xf8, 0xf7, 255},
		"red badge #fde3df":   {0xfd, 0xe3, 0xdf, 255},
		"amber badge #fff1cf": {0xff, 0xf1, 0xcf, 255},
		"green badge #e2f3e8": {0xe2, 0xf3, 0xe8, 255},
	} {
		if colours[c] < 100 {
			t.Errorf("screenshot shows %d pixels of the %s, want a visible area", colours[c], name)
		}
	}

	dom := string(browse(t, srv.URL+"/", "--dump-dom"))
	for _, want := range []string{
		"careindex operations", "Needs attention",
		"la505-involvements: delivery missing", "la505-clients: delivery late (newest is 36 h 5 min old)",
		"ryv-contacts: the last extract failed", "d81001-patients: 41.2% of rows quarantined (threshold 25%)",
		"v7", "published Tue 24 Nov 05:00", "connect: connection refused",
		"catch-up of the run due 2026-11-24 02:05 GMT", "to publish", "abandoned",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	for _, id := range []string{`data-source="d81001-patients"`, `data-source="ryv-contacts"`, `id="runs"`, `id="jobs"`} {
		if !strings.Contains(dom, id) {
			t.Errorf("rendered page lacks %s", id)
		}
	}
}
