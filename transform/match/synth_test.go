package match

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// A synthetic population for benchmarks and scale tests: deterministic
// for a seed, names drawn with a skewed (Zipf-like) frequency from common
// UK names plus invented ones, valid UK-shaped postcodes tied to streets,
// and about a fifth of the records duplicates of another person's record
// with realistic errors (typing errors, swapped names, a changed date of
// birth component, a house move, missing fields). Nothing here is a real
// person.

var synthGivenMale = strings.Fields(`OLIVER GEORGE HARRY JACK JACOB NOAH CHARLIE MUHAMMAD THOMAS OSCAR WILLIAM JAMES
HENRY LEO ALFIE JOSHUA FREDDIE ARCHIE ETHAN ISAAC ALEXANDER JOSEPH EDWARD SAMUEL MAX DANIEL ARTHUR LUCAS
MOHAMMED LOGAN THEO HARRISON BENJAMIN MASON SEBASTIAN FINLEY ADAM DYLAN ZACHARY RILEY TEDDY THEODORE DAVID
TOBY JAKE LUCA ELIJAH JOHN PAUL PETER MICHAEL ROBERT RICHARD STEPHEN ANDREW MARK CHRISTOPHER ANTHONY KEVIN
BRIAN GARY IAN ALAN COLIN GRAHAM KEITH MARTIN NEIL SIMON TREVOR ROGER DEREK GORDON NIGEL PHILIP MALCOLM
STUART RAYMOND DENNIS FRANK KENNETH RONALD ALBERT ERNEST WALTER STANLEY LEONARD HAROLD FREDERICK`)

var synthGivenFemale = strings.Fields(`OLIVIA AMELIA ISLA AVA EMILY SOPHIA GRACE MIA POPPY ELLA LILY EVIE ISABELLA
SOPHIE IVY FREYA HARPER WILLOW CHARLOTTE JESSICA ROSIE DAISY ALICE ELSIE SIENNA FLORENCE EVELYN PHOEBE
ARIA RUBY ISABELLE MATILDA LUNA ELIZABETH MAISIE ELEANOR ERIN HOLLY EMMA ANNA MARY SUSAN MARGARET PATRICIA
LINDA BARBARA JEAN CAROL SANDRA HELEN KAREN JULIE SARAH DEBORAH JANET ANGELA TRACEY NICOLA JOANNE CLAIRE
RACHEL LOUISE KATHERINE CATHERINE VICTORIA REBECCA LAURA HANNAH GEMMA AMY JENNIFER DOROTHY JOAN IRENE
DORIS EILEEN JOYCE SHEILA BRENDA PAMELA VALERIE MAUREEN CHRISTINE GILLIAN ELAINE DIANE LESLEY ZOE CHLOE`)

var synthFamily = strings.Fields(`SMITH JONES WILLIAMS TAYLOR BROWN DAVIES EVANS WILSON THOMAS JOHNSON ROBERTS
ROBINSON THOMPSON WRIGHT WALKER WHITE EDWARDS HUGHES GREEN HALL LEWIS HARRIS CLARKE PATEL JACKSON WOOD
TURNER MARTIN COOPER HILL WARD MORRIS MOORE CLARK LEE KING BAKER HARRISON MORGAN ALLEN JAMES SCOTT
PHILLIPS WATSON DAVIS PARKER PRICE BENNETT YOUNG GRIFFITHS MITCHELL KELLY COOK CARTER RICHARDSON BAILEY
COLLINS BELL SHAW MURPHY MILLER COX RICHARDS KHAN MARSHALL ANDERSON SIMPSON ELLIS ADAMS SINGH BEGUM
WILKINSON FOSTER CHAPMAN POWELL WEBB ROGERS GRAY MASON ALI HUNT HUSSAIN CAMPBELL MATTHEWS OWEN PALMER
HOLMES MILLS BARNES KNIGHT LLOYD BUTLER RUSSELL BARKER FISHER STEVENS JENKINS MURRAY DIXON HARVEY
GRAHAM PEARSON AHMED FLETCHER WALSH KAUR GIBSON HOWARD ANDREWS STEWART ELLIOTT REYNOLDS SAUNDERS
PAYNE FOX FORD PEARCE DAY BROOKS WEST LAWRENCE COLE ATKINSON BRADLEY SPENCER GILL DAWSON BALL BURTON
O'BRIEN WATTS ROSE BOOTH PERRY RYAN GRANT WELLS ARMSTRONG FRANCIS REES HAYES HART HUDSON NEWMAN BARRETT
WEBSTER HUNTER GREGORY CARR LOWE PAGE MARSH RILEY DUNN WOODS STONE PARSONS WARREN DOYLE CHAMBERS`)

var synthSyllables = strings.Fields(`BRAN WELL ASH TON HOLM FIELD KER SHAW MOR GAN DEN HURST WICK LEY COT TER STAN
FORD BURN HAM RID ING DALE MER TWIST ALD RICK BROOK SON HAL LOCK PEN DRY WYN GATE NOR THAM BECK ETT`)

var synthStreetWords = strings.Fields(`OAK MILL CHURCH STATION HIGH PARK MANOR VICTORIA QUEENS KINGS GREEN MEADOW
ELM ASH BIRCH BEECH WILLOW CEDAR HOLLY MAPLE ALBERT YORK WINDSOR GROSVENOR CHESTNUT SPRING BROOK RIVER
BRIDGE CASTLE ABBEY PRIORY FOREST HEATH MOOR VALLEY HILLSIDE ORCHARD FARM GROVE RECTORY VICARAGE SCHOOL
NEW OLD NORTH SOUTH CROSS MARKET`)

var synthStreetTypes = []string{"ROAD", "STREET", "LANE", "AVENUE", "CLOSE", "DRIVE", "WAY", "CRESCENT", "GARDENS", "TERRACE"}

// postcode areas whose districts take one or two digits freely
var synthAreas = []string{"LS", "M", "B", "S", "L", "NE", "BD", "CV", "DE", "NG", "LE", "ST", "WF", "HU", "DN", "YO", "PR", "BB", "OL", "SK"}

const synthInwardLetters = "ABDEFGHJLNPQRSTUWXYZ"

type synth struct {
	seed      uint64
	persons   int
	postcodes int
	practices int
}

// synthPerson is the clean record of person p.
func (s *synth) person(p int) Record {
	rng := rand.New(rand.NewPCG(s.seed, uint64(p)*2+1))
	var r Record
	r.ID = "p" + strconv.Itoa(p)
	male := rng.IntN(2) == 0
	if male {
		r.Sex = "male"
		r.GivenName = zipfPick(rng, synthGivenMale)
	} else {
		r.Sex = "female"
		r.GivenName = zipfPick(rng, synthGivenFemale)
	}
	if rng.IntN(10) < 3 {
		r.FamilyName = zipfPick(rng, synthFamily)
	} else {
		n := 2 + rng.IntN(2)
		var b strings.Builder
		for range n {
			b.WriteString(synthSyllables[rng.IntN(len(synthSyllables))])
		}
		r.FamilyName = b.String()
	}
	y := 1930 + rng.IntN(94)
	m := 1 + rng.IntN(12)
	d := 1 + rng.IntN(daysIn(y, m))
	r.DateOfBirth = fmt.Sprintf("%04d-%02d-%02d", y, m, d)
	r.Postcode, r.Address = s.home(rng.IntN(s.postcodes), rng)
	r.GPPractice = fmt.Sprintf("%c%05d", 'A'+byte(p%3), 81001+rng.IntN(s.practices))
	if rng.IntN(2) == 0 {
		r.NHSNumber = synthNHS(p)
	}
	return r
}

// home returns postcode number k and an address on its street.
func (s *synth) home(k int, rng *rand.Rand) (string, string) {
	h := uint64(k)*0x9e3779b97f4a7c15 + s.seed
	area := synthAreas[h%uint64(len(synthAreas))]
	district := 1 + (h>>8)%20
	sector := (h >> 16) % 10
	u1 := synthInwardLetters[(h>>24)%uint64(len(synthInwardLetters))]
	u2 := synthInwardLetters[(h>>32)%uint64(len(synthInwardLetters))]
	pc := fmt.Sprintf("%s%d %d%c%c", area, district, sector, u1, u2)
	w1 := synthStreetWords[(h>>40)%uint64(len(synthStreetWords))]
	w2 := strings.ToLower(synthStreetWords[(h>>46)%uint64(len(synthStreetWords))])
	street := w1 + w2 + " " + synthStreetTypes[(h>>54)%uint64(len(synthStreetTypes))]
	return pc, strconv.Itoa(1+rng.IntN(120)) + " " + street
}

// synthNHS returns a valid NHS number unique to person p.
func synthNHS(p int) string {
	for prefix := 4; ; prefix++ {
		base := fmt.Sprintf("%d%08d", prefix, p)
		sum := 0
		for i := 0; i < 9; i++ {
			sum += int(base[i]-'0') * (10 - i)
		}
		check := 11 - sum%11
		if check == 11 {
			check = 0
		}
		if check != 10 {
			return base + strconv.Itoa(check)
		}
	}
}

// zipfPick picks from a list with frequency falling with rank.
func zipfPick(rng *rand.Rand, list []string) string {
	// P(rank ≤ k) = (k/len)^(1/1.5): the first name takes a few per cent
	u := rng.Float64()
	k := int(float64(len(list)) * math.Pow(u, 1.5))
	if k >= len(list) {
		k = len(list) - 1
	}
	return list[k]
}

// typo makes one typing error: substitution, deletion, insertion or
// transposition of neighbours.
func typo(rng *rand.Rand, s string) string {
	if len(s) < 3 {
		return s
	}
	b := []byte(s)
	i := 1 + rng.IntN(len(b)-1)
	switch rng.IntN(4) {
	case 0:
		b[i] = 'A' + byte(rng.IntN(26))
	case 1:
		b = append(b[:i], b[i+1:]...)
	case 2:
		b = append(b[:i], append([]byte{'A' + byte(rng.IntN(26))}, b[i:]...)...)
	default:
		if i+1 < len(b) {
			b[i], b[i+1] = b[i+1], b[i]
		} else {
			b[i-1], b[i] = b[i], b[i-1]
		}
	}
	return string(b)
}

// duplicate returns another organisation's record of person p, with errors.
func (s *synth) duplicate(p, k int) Record {
	r := s.person(p)
	rng := rand.New(rand.NewPCG(s.seed^0xd1b54a32d192ed03, uint64(k)))
	r.ID = "d" + strconv.Itoa(k)
	if rng.IntN(100) < 12 {
		r.FamilyName = typo(rng, r.FamilyName)
	}
	if rng.IntN(100) < 12 {
		r.GivenName = typo(rng, r.GivenName)
	}
	if rng.IntN(100) < 2 {
		r.FamilyName, r.GivenName = r.GivenName, r.FamilyName
	}
	if rng.IntN(100) < 3 {
		r.GivenName = ""
	}
	if rng.IntN(100) < 10 {
		y, m, d := atoi(r.DateOfBirth[:4]), atoi(r.DateOfBirth[5:7]), atoi(r.DateOfBirth[8:])
		switch rng.IntN(4) {
		case 0:
			if d <= 12 {
				m, d = d, m
			} else {
				d = 1 + rng.IntN(28)
			}
		case 1:
			m = 1 + rng.IntN(12)
			d = min(d, daysIn(y, m))
		case 2:
			y += 1 - 2*rng.IntN(2)
		default:
			d = 1 + rng.IntN(daysIn(y, m))
		}
		r.DateOfBirth = fmt.Sprintf("%04d-%02d-%02d", y, m, d)
	}
	if rng.IntN(100) < 3 {
		r.DateOfBirth = ""
	}
	if rng.IntN(100) < 10 { // moved house
		r.Postcode, r.Address = s.home(rng.IntN(s.postcodes), rng)
		r.GPPractice = fmt.Sprintf("%c%05d", 'A'+byte(p%3), 81001+rng.IntN(s.practices))
	}
	if rng.IntN(100) < 5 {
		r.Postcode = ""
	}
	if rng.IntN(100) < 2 {
		r.Postcode = "ZZ99 3VZ"
	}
	if rng.IntN(100) < 10 {
		r.Address = strings.Replace(r.Address, " ROAD", " RD", 1)
		r.Address = typo(rng, r.Address)
	}
	if rng.IntN(100) < 10 {
		r.Sex = ""
	}
	if r.NHSNumber != "" && rng.IntN(100) < 40 {
		r.NHSNumber = ""
	}
	return r
}

// records streams n records: about 20% duplicates. truth, when not nil,
// receives each record's person.
func (s *synth) records(n int, truth *[]int32) Records {
	return func(yield func(Record, error) bool) {
		rng := rand.New(rand.NewPCG(s.seed, 0))
		for k := range n {
			var r Record
			var p int
			if rng.IntN(5) == 0 {
				p = rng.IntN(s.persons)
				r = s.duplicate(p, k)
			} else {
				p = k
				r = s.person(p)
			}
			if truth != nil {
				*truth = append(*truth, int32(p))
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}

func newSynth(n int, seed uint64) *synth {
	return &synth{seed: seed, persons: n, postcodes: max(n/30, 10), practices: max(n/7000, 5)}
}
