package normalise_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/careindex/careindex/transform/normalise"
)

// TestPersonContact: email is trimmed and lower-cased, phone trimmed with
// inner white space folded; neither is checked (they serve matching only).
func TestPersonContact(t *testing.T) {
	t.Parallel()
	header := []string{"ID", "Surname", "Email", "Tel"}
	opts := personOptions()
	opts.Columns = map[string]string{"local_id": "ID", "family_name": "Surname", "email": "Email", "phone": "Tel"}
	m := mapper(t, header, opts)
	p, err := m.Person(row(header, map[string]string{"ID": "1", "Surname": "Smith", "Email": "  Ann.Smith@Example.ORG ", "Tel": " 0113  496\t0000 "}))
	if err != nil {
		t.Fatal(err)
	}
	if p.Email != "ann.smith@example.org" || p.Phone != "0113 496 0000" {
		t.Errorf("email %q, phone %q", p.Email, p.Phone)
	}
	p, err = m.Person(row(header, map[string]string{"ID": "2", "Surname": "Smith", "Email": "not an email"}))
	if err != nil || p.Email != "not an email" || p.Phone != "" {
		t.Errorf("Person = %+v, %v", p, err)
	}
}

// TestAddressJoin: address may name several columns joined with "+".
func TestAddressJoin(t *testing.T) {
	t.Parallel()
	header := []string{"ID", "Surname", "street_number", "address_1", "suburb", "a+b"}
	opts := personOptions()
	opts.Columns = map[string]string{"local_id": "ID", "family_name": "Surname", "address": "street_number + address_1+suburb"}
	m := mapper(t, header, opts)
	p, err := m.Person(row(header, map[string]string{"ID": "1", "Surname": "Smith", "street_number": " 12 ", "address_1": "tullaroop  street", "suburb": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if p.Address != "12 TULLAROOP STREET" {
		t.Errorf("address %q", p.Address)
	}
	// A column whose name holds a + is that column.
	opts.Columns = map[string]string{"local_id": "ID", "family_name": "Surname", "address": "a+b"}
	m = mapper(t, header, opts)
	if p, _ := m.Person(row(header, map[string]string{"ID": "1", "Surname": "S", "a+b": "x", "suburb": "y"})); p.Address != "X" {
		t.Errorf("address %q, want the a+b column", p.Address)
	}
	// Every joined column must be in the header.
	opts.Columns = map[string]string{"local_id": "ID", "address": "street_number + town"}
	if _, err := normalise.NewMapper(header, opts); !errors.Is(err, normalise.ErrMissingColumn) || !strings.Contains(err.Error(), "town (for address)") {
		t.Errorf("NewMapper = %v", err)
	}
	// Only address joins.
	opts.Columns = map[string]string{"local_id": "ID", "family_name": "Surname + suburb"}
	if _, err := normalise.NewMapper(header, opts); !errors.Is(err, normalise.ErrMissingColumn) {
		t.Errorf("NewMapper joined family_name: %v", err)
	}
}
