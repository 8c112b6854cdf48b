package catalog

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"slices"
	"strings"
	"unicode"
)

// Monogram renders a provider mark from its name: up to two initials on a
// rounded square whose colour is derived from the name. It is ours, so no
// third-party logo is copied, and deterministic, so a provider keeps its
// colour across restarts and replicas.
func Monogram(name string) string {
	initials := monogramInitials(name)
	fontSize := 30
	if len([]rune(initials)) > 1 {
		fontSize = 24
	}
	var label, text bytes.Buffer
	_ = xml.EscapeText(&label, []byte(name))
	_ = xml.EscapeText(&text, []byte(initials))
	return fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64" role="img" aria-label="%s">`+
		`<rect width="64" height="64" rx="14" fill="%s"/>`+
		`<text x="32" y="32" dy="0.35em" text-anchor="middle" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" font-size="%d" font-weight="600" fill="#ffffff">%s</text>`+
		`</svg>`, label.String(), MonogramColor(name), fontSize, text.String())
}

// monogramInitials takes the first letter or digit of the first two
// whitespace-separated words: "Google Drive" → "GD", "monday.com" → "M".
func monogramInitials(name string) string {
	var out []rune
	for _, word := range strings.Fields(name) {
		for _, r := range word {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				out = append(out, unicode.ToUpper(r))
				break
			}
		}
		if len(out) == 2 {
			break
		}
	}
	if len(out) == 0 {
		return "?"
	}
	return string(out)
}

// MonogramColor returns the background colour of a name's monogram as
// "#rrggbb": a hue from an FNV-1a hash of the name, darkened until white
// text on it meets the WCAG AA contrast ratio of 4.5:1.
func MonogramColor(name string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	hue := float64(h.Sum32() % 360)
	light := 0.45
	r, g, b := hslToRGB(hue, 0.62, light)
	for contrastWithWhite(r, g, b) < 4.5 && light > 0.05 {
		light -= 0.02
		r, g, b = hslToRGB(hue, 0.62, light)
	}
	return fmt.Sprintf("#%02x%02x%02x", r, g, b)
}

func hslToRGB(h, s, l float64) (uint8, uint8, uint8) {
	c := (1 - math.Abs(2*l-1)) * s
	hp := h / 60
	x := c * (1 - math.Abs(math.Mod(hp, 2)-1))
	var r, g, b float64
	switch {
	case hp < 1:
		r, g = c, x
	case hp < 2:
		r, g = x, c
	case hp < 3:
		g, b = c, x
	case hp < 4:
		g, b = x, c
	case hp < 5:
		r, b = x, c
	default:
		r, b = c, x
	}
	m := l - c/2
	to8 := func(v float64) uint8 { return uint8(math.Round((v + m) * 255)) }
	return to8(r), to8(g), to8(b)
}

// contrastWithWhite is the WCAG 2 contrast ratio of white against the
// colour.
func contrastWithWhite(r, g, b uint8) float64 {
	lin := func(c uint8) float64 {
		v := float64(c) / 255
		if v <= 0.03928 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	lum := 0.2126*lin(r) + 0.7152*lin(g) + 0.0722*lin(b)
	return 1.05 / (lum + 0.05)
}

// maxLogoSVG bounds a hand-made mark; a simple mark is a few hundred bytes.
const maxLogoSVG = 8 << 10

// Elements and attributes a hand-made logo may use: plain shapes and text.
// Anything that can script, load a resource or pull in other markup
// (script, foreignObject, use, image, style, href, on*) is refused, so the
// mark is safe even where it is inlined rather than shown as an <img>.
var (
	logoElements = []string{
		"svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline",
		"polygon", "text", "tspan", "title", "desc", "defs", "lineargradient",
		"radialgradient", "stop",
	}
	logoAttributes = []string{
		"xmlns", "viewbox", "width", "height", "role", "aria-label", "id",
		"fill", "fill-rule", "fill-opacity", "clip-rule", "stroke", "stroke-width",
		"stroke-linecap", "stroke-linejoin", "stroke-opacity", "opacity",
		"transform", "d", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r",
		"rx", "ry", "points", "dx", "dy", "text-anchor", "font-family",
		"font-size", "font-weight", "offset", "stop-color", "stop-opacity",
		"gradientunits", "gradienttransform",
	}
)

// checkLogoSVG accepts a well-formed SVG document made only of the
// elements and attributes above.
func checkLogoSVG(s string) error {
	if len(s) > maxLogoSVG {
		return fmt.Errorf("is larger than %d bytes", maxLogoSVG)
	}
	dec := xml.NewDecoder(strings.NewReader(s))
	dec.Strict = true
	depth, roots := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("is not well-formed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := strings.ToLower(t.Name.Local)
			if depth == 0 {
				roots++
				if name != "svg" || roots > 1 {
					return errors.New("must be a single <svg> element")
				}
			}
			if !slices.Contains(logoElements, name) {
				return fmt.Errorf("element <%s> is not allowed", t.Name.Local)
			}
			for _, a := range t.Attr {
				an := strings.ToLower(a.Name.Local)
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && an == "xmlns") {
					continue
				}
				if !slices.Contains(logoAttributes, an) {
					return fmt.Errorf("attribute %q is not allowed", a.Name.Local)
				}
				if strings.Contains(strings.ToLower(a.Value), "url(") && an != "fill" && an != "stroke" {
					return fmt.Errorf("attribute %q cannot reference a URL", a.Name.Local)
				}
				if strings.Contains(strings.ToLower(a.Value), "url(") && !strings.HasPrefix(strings.TrimSpace(a.Value), "url(#") {
					return fmt.Errorf("attribute %q can only reference a gradient in the same document", a.Name.Local)
				}
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.ProcInst:
			if t.Target != "xml" {
				return errors.New("processing instructions are not allowed")
			}
		case xml.Directive:
			// A DOCTYPE could declare entities.
			return errors.New("directives (DOCTYPE) are not allowed")
		}
	}
	if roots != 1 {
		return errors.New("must be a single <svg> element")
	}
	return nil
}
