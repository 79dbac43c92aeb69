package notify

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"strings"
	texttemplate "text/template"

	"github.com/shopd/shopd/store"
)

// templateFS holds the message templates, compiled into the binary. Each
// message <name> has <name>.txt.tmpl (its subject, in a "subject" block,
// and its text body) and, for email, <name>.html.tmpl (a "content" block
// inside layout.html.tmpl). The HTML part goes through html/template, so
// every customer-supplied string in it is escaped.
//
//go:embed templates/*.tmpl
var templateFS embed.FS

type compiled struct {
	text *texttemplate.Template
	html *htmltemplate.Template // nil for SMS
}

// templates are parsed once, at start-up: a broken template stops the
// binary from starting rather than a message from being sent.
var templates = mustParse()

func mustParse() map[string]compiled {
	out := map[string]compiled{}
	names, err := fs.Glob(templateFS, "templates/*.txt.tmpl")
	if err != nil {
		panic(err)
	}
	for _, path := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(path, "templates/"), ".txt.tmpl")
		c := compiled{text: texttemplate.Must(texttemplate.New(name+".txt.tmpl").Funcs(funcs).ParseFS(templateFS, path))}
		htmlPath := "templates/" + name + ".html.tmpl"
		if _, err := fs.Stat(templateFS, htmlPath); err == nil {
			c.html = htmltemplate.Must(htmltemplate.New("layout.html.tmpl").Funcs(htmltemplate.FuncMap(funcs)).
				ParseFS(templateFS, "templates/layout.html.tmpl", htmlPath))
		}
		out[name] = c
	}
	return out
}

var funcs = texttemplate.FuncMap{}

// render renders template name with data into a message's subject and
// bodies (no HTML body for SMS).
func (o *Outbox) render(name string, data any) (Message, error) {
	c, ok := templates[name]
	if !ok {
		return Message{}, fmt.Errorf("render %s: no such template", name)
	}
	var m Message
	m.Template = name
	var b bytes.Buffer
	if c.text.Lookup("subject") != nil {
		if err := c.text.ExecuteTemplate(&b, "subject", data); err != nil {
			return Message{}, fmt.Errorf("render %s subject: %w", name, err)
		}
		m.Subject = strings.TrimSpace(b.String())
		b.Reset()
	}
	if err := c.text.Execute(&b, data); err != nil {
		return Message{}, fmt.Errorf("render %s text: %w", name, err)
	}
	m.BodyText = strings.TrimSpace(b.String()) + "\n"
	if c.html != nil {
		b.Reset()
		if err := c.html.Execute(&b, data); err != nil {
			return Message{}, fmt.Errorf("render %s html: %w", name, err)
		}
		m.BodyHTML = b.String()
	}
	return m, nil
}

// OrderData is what order templates see.
type OrderData struct {
	Name           string // the customer's first name
	OrderNumber    string // ORD-000123
	OrderURL       string // the order on the storefront
	StorefrontURL  string
	Total          string // "123.45 USD"
	Refunded       string // refunded so far
	TrackingNumber string
	Items          []ItemData
}

// ItemData is an order line in a template.
type ItemData struct {
	Name      string
	Quantity  int
	LineTotal string
}

func orderData(storefront string, o store.Order, firstName string) OrderData {
	d := OrderData{
		Name:          firstName,
		OrderNumber:   o.Number(),
		OrderURL:      strings.TrimRight(storefront, "/") + "/orders/" + o.ID,
		StorefrontURL: storefront,
		Total:         money(o.TotalCents, o.Currency),
		Refunded:      money(o.RefundedCents, o.Currency),
	}
	if o.TrackingNumber != nil {
		d.TrackingNumber = *o.TrackingNumber
	}
	for _, it := range o.Items {
		d.Items = append(d.Items, ItemData{Name: it.Name, Quantity: it.Quantity, LineTotal: money(it.LineTotalCents, o.Currency)})
	}
	return d
}

// money formats minor units of a two-decimal currency: 12345 usd is
// "123.45 USD".
func money(cents int64, currency string) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, cents/100, cents%100, strings.ToUpper(currency))
}
