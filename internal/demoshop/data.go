package demoshop

import "github.com/surge-commerce/surge/internal/catalog"

// The word lists below hold no digits in anything that ends up in a product
// name, so a base slug never ends in "-<number>" and the suffix added to a
// repeated name cannot collide with another name's slug.

// categoryList is the fixed tree, parents before children. ParentID is the
// parent's index+1 in this list, the form ImportCatalog expects.
var categoryList = []catalog.Category{
	{ParentID: 0, Slug: "women", Name: "Women", Position: 1, Description: "Easy dresses, shirts and knits in natural fibres, made to be worn for years."},
	{ParentID: 1, Slug: "women-dresses", Name: "Dresses", Position: 1, Description: "Midi, maxi and shirt dresses in linen, cotton and silk."},
	{ParentID: 1, Slug: "women-tops", Name: "Tops & Shirts", Position: 2, Description: "Everyday tees, blouses and shirts that layer well."},
	{ParentID: 1, Slug: "women-knitwear", Name: "Knitwear", Position: 3, Description: "Merino, cashmere and lambswool sweaters and cardigans."},
	{ParentID: 1, Slug: "women-outerwear", Name: "Coats & Jackets", Position: 4, Description: "Wool coats, trenches and waterproof jackets for every season."},
	{ParentID: 0, Slug: "men", Name: "Men", Position: 2, Description: "Shirts, knitwear and trousers cut for comfort and built to last."},
	{ParentID: 6, Slug: "men-shirts", Name: "Shirts & Tees", Position: 1, Description: "Oxford, linen and flannel shirts, overshirts and tees."},
	{ParentID: 6, Slug: "men-knitwear", Name: "Knitwear", Position: 2, Description: "Crew necks, cardigans and quarter-zips in fine wools."},
	{ParentID: 6, Slug: "men-trousers", Name: "Trousers & Jeans", Position: 3, Description: "Chinos, jeans and easy drawstring trousers."},
	{ParentID: 0, Slug: "accessories", Name: "Accessories", Position: 3, Description: "Bags, shoes, scarves and hats to finish an outfit."},
	{ParentID: 10, Slug: "bags", Name: "Bags", Position: 1, Description: "Leather, canvas and recycled nylon bags for work, travel and weekends."},
	{ParentID: 10, Slug: "shoes", Name: "Shoes", Position: 2, Description: "Sneakers, boots, loafers and sandals, resoleable where we can."},
	{ParentID: 10, Slug: "scarves-hats", Name: "Scarves & Hats", Position: 3, Description: "Soft scarves, beanies and caps for cold and sun."},
	{ParentID: 0, Slug: "home", Name: "Home & Living", Position: 4, Description: "Tableware, bedding and bath linen made by small workshops."},
	{ParentID: 14, Slug: "kitchen-dining", Name: "Kitchen & Dining", Position: 1, Description: "Stoneware, glass and oak for the table and the kitchen."},
	{ParentID: 14, Slug: "bed-bath", Name: "Bed & Bath", Position: 2, Description: "Linen and percale bedding, towels and robes."},
	{ParentID: 0, Slug: "kids", Name: "Kids", Position: 5, Description: "Hard-wearing clothes for playgrounds and puddles, ages two to thirteen."},
}

// material is what a product is made of; it drives the name, price, care
// and origin, and the words full-text search finds.
type material struct {
	name        string   // as in the product name: "Linen"
	mods        []string // optional words before it: "Washed"
	composition string   // the material attribute: "100% linen"
	phrase      string   // completes "made from ..."
	care        string   // a full sentence
	careShort   string   // the care attribute
	origins     []string
	pricePct    int64 // price relative to the product type's base
}

var (
	linen = &material{"Linen", []string{"Washed", "Stonewashed", "Airy"}, "100% linen",
		"washed European linen that softens with every wear",
		"Machine wash cold and line dry; linen is meant to look a little rumpled.", "Machine wash cold",
		[]string{"Lithuania", "Portugal", "France"}, 115}
	cotton = &material{"Cotton", []string{"Organic", "Brushed", "Garment-Dyed", "Heavyweight"}, "100% organic cotton",
		"long-staple organic cotton with a soft, dry hand",
		"Machine wash cold with like colours and tumble dry low.", "Machine wash cold",
		[]string{"Portugal", "Turkey", "India", "Peru"}, 100}
	poplin = &material{"Poplin", []string{"Crisp", "Striped", "Organic"}, "100% cotton poplin",
		"crisp cotton poplin woven for a clean, smooth finish",
		"Machine wash cold and iron while slightly damp.", "Machine wash cold",
		[]string{"Portugal", "Italy", "India"}, 100}
	denim = &material{"Denim", []string{"Rinsed", "Selvedge", "Washed", "Raw"}, "100% cotton denim",
		"rigid cotton denim that moulds to you over time",
		"Wash inside out, cold, and only when it really needs it.", "Wash inside out, cold",
		[]string{"Japan", "Italy", "Turkey"}, 120}
	merino = &material{"Merino", []string{"Fine", "Extra-Fine", "Ribbed"}, "100% merino wool",
		"fine merino wool that regulates temperature and resists odour",
		"Hand wash cold or use a wool cycle, then dry flat.", "Hand wash cold, dry flat",
		[]string{"Italy", "Peru", "New Zealand"}, 160}
	cashmere = &material{"Cashmere", []string{"Pure", "Brushed", "Featherweight"}, "100% cashmere",
		"two-ply Mongolian cashmere, light, warm and very soft",
		"Hand wash cold with a wool detergent, dry flat and store folded.", "Hand wash cold, dry flat",
		[]string{"Mongolia", "Scotland", "Italy"}, 260}
	lambswool = &material{"Lambswool", []string{"Shetland", "Brushed", "Chunky"}, "100% lambswool",
		"springy lambswool with a softly brushed finish",
		"Hand wash cold or use a wool cycle, then dry flat.", "Hand wash cold, dry flat",
		[]string{"Scotland", "Ireland"}, 130}
	silk = &material{"Silk", []string{"Washed", "Sandwashed", "Printed"}, "100% mulberry silk",
		"sandwashed mulberry silk with a fluid drape and a soft sheen",
		"Hand wash cold or dry clean, and never wring.", "Hand wash cold or dry clean",
		[]string{"Italy", "India"}, 190}
	tencel = &material{"Tencel", []string{"Fluid", "Soft"}, "100% Tencel lyocell",
		"Tencel lyocell made from responsibly sourced wood pulp, cool against the skin",
		"Machine wash cold on a gentle cycle and line dry.", "Machine wash cold, gentle",
		[]string{"Portugal", "Turkey"}, 105}
	wool = &material{"Wool", []string{"Boiled", "Double-Faced", "Melton"}, "80% wool, 20% recycled polyamide",
		"dense Italian wool that keeps its shape and the cold out",
		"Dry clean only, and brush after wearing.", "Dry clean only",
		[]string{"Italy", "Portugal"}, 200}
	waxedCotton = &material{"Waxed Cotton", nil, "100% cotton, paraffin wax finish",
		"showerproof waxed cotton that ages beautifully",
		"Sponge clean with cold water and re-wax once a season.", "Sponge clean, re-wax yearly",
		[]string{"England", "Scotland"}, 150}
	nylon = &material{"Recycled Nylon", []string{"Waterproof", "Packable", "Ripstop"}, "100% recycled nylon",
		"a waterproof, breathable shell of recycled nylon with taped seams",
		"Machine wash cold with all zips closed; do not tumble dry.", "Machine wash cold",
		[]string{"Vietnam", "Portugal"}, 140}
	corduroy = &material{"Corduroy", []string{"Needlecord", "Wide-Wale"}, "100% cotton corduroy",
		"soft cotton corduroy with a rich, velvety wale",
		"Machine wash cold inside out and line dry.", "Machine wash cold",
		[]string{"Portugal", "Italy"}, 110}
	twill = &material{"Twill", []string{"Garment-Dyed", "Brushed", "Stretch"}, "98% cotton, 2% elastane",
		"a sturdy cotton twill with just a touch of stretch",
		"Machine wash cold and tumble dry low.", "Machine wash cold",
		[]string{"Portugal", "Turkey"}, 100}
	flannel = &material{"Flannel", []string{"Brushed", "Check", "Heavyweight"}, "100% cotton flannel",
		"brushed cotton flannel that is warm without weight",
		"Machine wash cold and tumble dry low.", "Machine wash cold",
		[]string{"Portugal", "India"}, 110}
	fleece = &material{"Fleece", []string{"Recycled", "Cosy", "Sherpa"}, "100% recycled polyester fleece",
		"soft recycled fleece that dries fast",
		"Machine wash cold; do not tumble dry.", "Machine wash cold",
		[]string{"Portugal", "Turkey"}, 90}
	leather = &material{"Leather", []string{"Full-Grain", "Vegetable-Tanned", "Pebbled"}, "100% full-grain leather",
		"full-grain leather from a certified tannery, which darkens with use",
		"Wipe clean with a damp cloth and condition twice a year.", "Wipe clean, condition",
		[]string{"Italy", "Spain", "Portugal"}, 250}
	suede = &material{"Suede", []string{"Brushed", "Water-Repellent"}, "100% calf suede",
		"soft calf suede with a water-repellent treatment",
		"Brush gently and use a suede protector before the first wear.", "Brush, protect",
		[]string{"Italy", "Spain"}, 230}
	canvas = &material{"Canvas", []string{"Waxed", "Heavy", "Recycled"}, "100% cotton canvas",
		"heavy cotton canvas that softens and fades with age",
		"Spot clean with mild soap and air dry.", "Spot clean",
		[]string{"Portugal", "India", "England"}, 100}
	stoneware = &material{"Stoneware", []string{"Speckled", "Hand-Glazed", "Reactive-Glaze"}, "stoneware",
		"high-fired stoneware with a reactive glaze, so no two pieces are quite alike",
		"Dishwasher and microwave safe.", "Dishwasher safe",
		[]string{"Portugal", "Japan", "England"}, 100}
	porcelain = &material{"Porcelain", []string{"Fine", "Matte", "Fluted"}, "porcelain",
		"fine porcelain, thin and surprisingly strong",
		"Dishwasher and microwave safe.", "Dishwasher safe",
		[]string{"Portugal", "Germany", "Japan"}, 115}
	glass = &material{"Glass", []string{"Recycled", "Mouth-Blown", "Ribbed"}, "borosilicate glass",
		"mouth-blown borosilicate glass that takes boiling water",
		"Hand wash recommended.", "Hand wash",
		[]string{"Czech Republic", "Spain", "Portugal"}, 90}
	oak = &material{"Oak", []string{"Oiled", "Solid", "Smoked"}, "solid oak",
		"solid oak from managed forests, finished with food-safe oil",
		"Wipe clean and oil now and then with food-safe oil; never soak.", "Wipe clean, oil",
		[]string{"Denmark", "France"}, 130}
	castIron = &material{"Cast Iron", []string{"Enamelled", "Pre-Seasoned"}, "enamelled cast iron",
		"cast iron that holds heat evenly from hob to oven",
		"Hand wash and dry thoroughly.", "Hand wash",
		[]string{"France", "England"}, 180}
	homeLinen = &material{"Linen", []string{"Stonewashed", "French", "Washed"}, "100% French flax linen",
		"stonewashed French flax linen that gets softer with every wash",
		"Machine wash warm and tumble dry low.", "Machine wash warm",
		[]string{"Lithuania", "Portugal"}, 130}
	percale = &material{"Percale", []string{"Crisp", "Organic"}, "100% organic cotton percale",
		"a crisp, cool cotton percale for warm sleepers",
		"Machine wash warm and tumble dry low.", "Machine wash warm",
		[]string{"Portugal", "India"}, 100}
	sateen = &material{"Sateen", []string{"Silky", "Organic"}, "100% organic cotton sateen",
		"a silky cotton sateen with a gentle sheen",
		"Machine wash warm and tumble dry low.", "Machine wash warm",
		[]string{"Portugal", "India"}, 110}
	terry = &material{"Turkish Cotton", []string{"Plush", "Waffle-Weave", "Organic"}, "100% Turkish cotton",
		"absorbent long-loop Turkish cotton that stays soft wash after wash",
		"Machine wash warm and tumble dry; skip the fabric softener.", "Machine wash warm",
		[]string{"Turkey", "Portugal"}, 100}
)

// style is an optional word between material and product type. fit is the
// sentence that describes it, or "" when the department's generic fit
// sentences apply.
type style struct {
	word string
	fit  string
}

var (
	relaxed   = style{"Relaxed", "Cut relaxed through the body with dropped shoulders; take your usual size."}
	slim      = style{"Slim", "A slim fit that sits close to the body; size up if you prefer more room."}
	oversized = style{"Oversized", "Deliberately oversized, so consider sizing down for a closer fit."}
	boxy      = style{"Boxy", "A boxy, slightly cropped shape that sits at the hip."}
	cropped   = style{"Cropped", "Cropped to sit at the waist, which works well with high-rise trousers."}
	regular   = style{"Regular", "A regular fit: neither slim nor loose; true to size."}
)

// sizeValue is one size a product can come in.
type sizeValue struct {
	value string
	code  string // in the SKU
	// pct scales the price (bedding grows with the bed); 0 means 100.
	pct int64
	// large marks the sizes that sometimes cost more (XL, older kids).
	large bool
}

// sizing is the size axis of a department or product type. An empty sizing
// means variants differ by colour only.
type sizing []sizeValue

var (
	apparelSizes = sizing{{"XS", "XS", 0, false}, {"S", "S", 0, false}, {"M", "M", 0, false}, {"L", "L", 0, false}, {"XL", "XL", 0, true}}
	shoeSizes    = sizing{{"EU 36", "36", 0, false}, {"EU 37", "37", 0, false}, {"EU 38", "38", 0, false}, {"EU 39", "39", 0, false},
		{"EU 40", "40", 0, false}, {"EU 41", "41", 0, false}, {"EU 42", "42", 0, false}, {"EU 43", "43", 0, false},
		{"EU 44", "44", 0, false}, {"EU 45", "45", 0, false}, {"EU 46", "46", 0, false}}
	oneSize  = sizing{{"One Size", "OS", 0, false}}
	bedSizes = sizing{{"Twin", "TW", 100, false}, {"Full", "FL", 120, false}, {"Queen", "QN", 135, false}, {"King", "KG", 150, false}}
	kidsAges = sizing{{"2-3Y", "2-3Y", 0, false}, {"4-5Y", "4-5Y", 0, false}, {"6-7Y", "6-7Y", 0, false},
		{"8-9Y", "8-9Y", 0, false}, {"10-11Y", "10-11Y", 0, true}, {"12-13Y", "12-13Y", 0, true}}
	colourOnly = sizing{}
)

type colour struct{ name, code string }

var (
	apparelColours = []colour{{"Black", "BLK"}, {"Navy", "NVY"}, {"Ecru", "ECR"}, {"Olive", "OLV"}, {"Sand", "SND"},
		{"Charcoal", "CHR"}, {"Rust", "RST"}, {"Sage", "SGE"}, {"Stone", "STN"}, {"White", "WHT"}, {"Indigo", "IND"}, {"Burgundy", "BRG"}}
	leatherColours = []colour{{"Black", "BLK"}, {"Tan", "TAN"}, {"Dark Brown", "BRN"}, {"Navy", "NVY"}, {"Off-White", "OWH"}, {"Olive", "OLV"}, {"Cognac", "COG"}}
	homeColours    = []colour{{"Natural", "NAT"}, {"White", "WHT"}, {"Sage", "SGE"}, {"Clay", "CLY"}, {"Charcoal", "CHR"}, {"Oat", "OAT"}, {"Ocean", "OCN"}}
	kidsColours    = []colour{{"Navy", "NVY"}, {"Red", "RED"}, {"Sunshine Yellow", "YLW"}, {"Forest Green", "GRN"}, {"Pink", "PNK"}, {"Grey Marl", "GRY"}, {"Breton Stripe", "STR"}}
)

// productType is the noun at the end of a product name. Price is the base
// in minor units of a two-decimal currency. mats and sizes, when set,
// override the department's.
type productType struct {
	name   string
	price  int64
	plural bool // "Chinos are", not "Chinos is"
	mats   []*material
	sizes  sizing
	plain  bool // takes no style word: no "Roll-Top Wallet"
}

// department is a leaf category and everything needed to fill it.
type department struct {
	cat      int // index in categoryList
	weight   int // relative share of products
	types    []productType
	mats     []*material
	styles   []style
	sizes    sizing
	colours  []colour
	fits     []string // generic fit or use sentences
	features []string
	praise   []string // completes "this shirt is ..."
}

var departments = []department{
	{
		cat: 1, weight: 9,
		types: []productType{
			{name: "Midi Dress", price: 8900}, {name: "Maxi Dress", price: 9900}, {name: "Slip Dress", price: 7900, mats: []*material{silk, tencel}},
			{name: "Shirt Dress", price: 8500, mats: []*material{linen, poplin, cotton}}, {name: "Wrap Dress", price: 8900}, {name: "Smock Dress", price: 7500},
		},
		mats:     []*material{linen, cotton, poplin, silk, tencel},
		styles:   []style{{"Tiered", ""}, {"Puff-Sleeve", ""}, {"Button-Front", ""}, {"Bias-Cut", ""}, {"Sleeveless", ""}, relaxed},
		sizes:    apparelSizes,
		colours:  apparelColours,
		fits:     []string{"Falls to mid-calf on most heights, with a softly gathered waist.", "An easy shape with room to move; take your usual size.", "Fully lined to the hip, with side-seam pockets deep enough for a phone."},
		features: []string{"Side-seam pockets, naturally.", "Shell buttons and French seams throughout.", "Made in a small family-run workshop we have worked with for years."},
		praise:   []string{"made for warm days and long evenings", "an easy dress to throw on and forget about", "as good with sneakers as with sandals"},
	},
	{
		cat: 2, weight: 10,
		types: []productType{
			{name: "Shirt", price: 6900}, {name: "Blouse", price: 7900}, {name: "T-Shirt", price: 2900, mats: []*material{cotton, linen, tencel}},
			{name: "Tank", price: 2500, mats: []*material{cotton, linen, silk}}, {name: "Camisole", price: 4900, mats: []*material{silk, tencel}}, {name: "Long-Sleeve Top", price: 3900, mats: []*material{cotton, tencel, merino}},
		},
		mats:     []*material{linen, cotton, poplin, silk, tencel},
		styles:   []style{relaxed, boxy, cropped, oversized, {"Fitted", "Fitted through the body with a little stretch; true to size."}, {"Pintuck", ""}},
		sizes:    apparelSizes,
		colours:  apparelColours,
		fits:     []string{"Hits at the hip and tucks in neatly; true to size.", "A straight, easy shape; take your usual size."},
		features: []string{"Finished with French seams so it lasts.", "Garment-washed for softness from the first wear.", "A curved hem that works tucked or untucked."},
		praise:   []string{"an everyday staple", "easy to layer through every season", "the one you will reach for first"},
	},
	{
		cat: 3, weight: 8,
		types: []productType{
			{name: "Crew Neck Sweater", price: 9900}, {name: "V-Neck Cardigan", price: 10900}, {name: "Turtleneck", price: 9900},
			{name: "Sweater Vest", price: 6900}, {name: "Polo Sweater", price: 9500}, {name: "Wrap Cardigan", price: 11900},
		},
		mats:     []*material{merino, cashmere, lambswool, cotton},
		styles:   []style{relaxed, cropped, oversized, {"Cable-Knit", ""}, {"Rib-Knit", ""}, {"Fine-Gauge", ""}},
		sizes:    apparelSizes,
		colours:  apparelColours,
		fits:     []string{"Sits just below the hip with ribbed cuffs and hem; true to size.", "A relaxed shape with a slightly dropped shoulder."},
		features: []string{"Fully fashioned, so the seams lie flat and it keeps its shape.", "Knitted in a family-run mill that has been spinning yarn for three generations.", "Pre-washed so it will not shrink."},
		praise:   []string{"warm without bulk", "a sweater to keep for a decade", "easy to wear over a shirt or on its own"},
	},
	{
		cat: 4, weight: 6,
		types: []productType{
			{name: "Trench Coat", price: 22900, mats: []*material{cotton, waxedCotton, nylon}}, {name: "Wrap Coat", price: 27900, mats: []*material{wool, cashmere}},
			{name: "Rain Jacket", price: 15900, mats: []*material{nylon, waxedCotton}}, {name: "Quilted Jacket", price: 14900, mats: []*material{nylon, cotton}},
			{name: "Puffer Jacket", price: 19900, mats: []*material{nylon}}, {name: "Field Jacket", price: 17900, mats: []*material{waxedCotton, cotton, canvas}},
			{name: "Car Coat", price: 24900, mats: []*material{wool}},
		},
		mats:     []*material{wool, waxedCotton, nylon, cotton},
		styles:   []style{{"Longline", ""}, cropped, relaxed, {"Belted", ""}, {"Hooded", ""}, oversized},
		sizes:    apparelSizes,
		colours:  apparelColours,
		fits:     []string{"Cut with room for a sweater underneath; take your usual size.", "Falls below the hip with a storm flap and adjustable cuffs."},
		features: []string{"A two-way zip, deep hand-warmer pockets and a hood that stays put in the wind.", "Lined with recycled insulation for cold mornings.", "Waterproof seams and a waterproof zip keep the rain out.", "Horn buttons and a fully lined body."},
		praise:   []string{"built for wet commutes and cold weekends", "the coat you will wear from October to April", "a jacket that earns its place"},
	},
	{
		cat: 6, weight: 10,
		types: []productType{
			{name: "Shirt", price: 6500}, {name: "Oxford Shirt", price: 6900, mats: []*material{cotton, poplin}}, {name: "Overshirt", price: 8900, mats: []*material{corduroy, flannel, canvas, denim, wool}},
			{name: "Camp Collar Shirt", price: 6500, mats: []*material{linen, tencel, cotton}}, {name: "Grandad Shirt", price: 6900}, {name: "Polo Shirt", price: 5500, mats: []*material{cotton, merino}},
			{name: "T-Shirt", price: 2900, mats: []*material{cotton, merino, linen}}, {name: "Work Shirt", price: 7500, mats: []*material{denim, canvas, flannel}},
		},
		mats:     []*material{linen, cotton, poplin, flannel, denim},
		styles:   []style{relaxed, slim, regular, boxy, {"Short-Sleeve", ""}, {"Button-Down", ""}},
		sizes:    apparelSizes,
		colours:  apparelColours,
		fits:     []string{"A straight cut with a back pleat for movement; true to size.", "Long enough to tuck in, short enough to wear out."},
		features: []string{"Corozo buttons and single-needle stitching.", "Garment-washed for softness from the first wear.", "A chest pocket big enough for a notebook."},
		praise:   []string{"an everyday staple", "made to be worn hard and washed often", "as good under a jacket as on its own"},
	},
	{
		cat: 7, weight: 7,
		types: []productType{
			{name: "Crew Neck Sweater", price: 9900}, {name: "Quarter-Zip Sweater", price: 10900}, {name: "Cardigan", price: 11900},
			{name: "Roll Neck", price: 10500}, {name: "Knitted Polo", price: 8900}, {name: "Fisherman Sweater", price: 12900, mats: []*material{lambswool, merino}},
		},
		mats:     []*material{merino, cashmere, lambswool, cotton},
		styles:   []style{relaxed, slim, {"Cable-Knit", ""}, {"Rib-Knit", ""}, {"Waffle-Knit", ""}, {"Fine-Gauge", ""}},
		sizes:    apparelSizes,
		colours:  apparelColours,
		fits:     []string{"A classic fit that layers over a shirt; true to size.", "Sits at the hip with ribbed cuffs and hem."},
		features: []string{"Fully fashioned, so the seams lie flat and it keeps its shape.", "Knitted in Scotland on vintage frames.", "Pre-washed so it will not shrink."},
		praise:   []string{"warm without bulk", "a sweater to keep for a decade", "the layer you will live in all winter"},
	},
	{
		cat: 8, weight: 8,
		types: []productType{
			{name: "Chinos", price: 7900, plural: true, mats: []*material{twill, corduroy}}, {name: "Trousers", price: 8900, plural: true},
			{name: "Jeans", price: 9900, plural: true, mats: []*material{denim}}, {name: "Shorts", price: 5500, plural: true, mats: []*material{twill, linen, cotton}},
			{name: "Drawstring Trousers", price: 7500, plural: true, mats: []*material{linen, cotton, twill}}, {name: "Cargo Trousers", price: 8900, plural: true, mats: []*material{twill, canvas, nylon}},
		},
		mats:     []*material{twill, denim, linen, corduroy, wool},
		styles:   []style{slim, {"Straight-Leg", ""}, {"Tapered", ""}, relaxed, {"Wide-Leg", ""}, {"Pleated", ""}},
		sizes:    apparelSizes,
		colours:  apparelColours,
		fits:     []string{"A mid rise with a straight leg and a little taper below the knee.", "Sits at the natural waist; the hem is left long to take up to taste."},
		features: []string{"Deep pockets, a hidden coin pocket and a button fly.", "Belt loops and a waistband that does not dig in.", "Bar-tacked at every stress point."},
		praise:   []string{"your weekday and weekend uniform", "made to be worn hard", "easy to dress up or down"},
	},
	{
		cat: 10, weight: 7,
		types: []productType{
			{name: "Tote Bag", price: 8900}, {name: "Backpack", price: 14900}, {name: "Crossbody Bag", price: 11900},
			{name: "Weekender", price: 19900}, {name: "Card Holder", price: 3900, mats: []*material{leather, suede}, plain: true},
			{name: "Belt Bag", price: 7900}, {name: "Wallet", price: 5900, mats: []*material{leather}, plain: true}, {name: "Laptop Sleeve", price: 6900, mats: []*material{leather, canvas, fleece}},
		},
		mats:     []*material{leather, canvas, nylon, suede},
		styles:   []style{{"Mini", ""}, {"Oversized", ""}, {"Zip-Top", ""}, {"Roll-Top", ""}, {"Structured", ""}, {"Slouchy", ""}},
		sizes:    oneSize,
		colours:  leatherColours,
		fits:     []string{"Holds a laptop, a water bottle and a day's worth of things.", "Sized for the essentials and nothing more."},
		features: []string{"A waterproof lining and a magnetic closure.", "Solid brass hardware that will not chip.", "An adjustable strap and an inside zip pocket.", "Padded back panel and a luggage sleeve."},
		praise:   []string{"made to carry every day", "a bag that gets better with age", "for work, travel and everything between"},
	},
	{
		cat: 11, weight: 8,
		types: []productType{
			{name: "Sneakers", price: 11900, plural: true, mats: []*material{leather, suede, canvas, nylon}}, {name: "Chelsea Boots", price: 21900, plural: true, mats: []*material{leather, suede}},
			{name: "Loafers", price: 17900, plural: true, mats: []*material{leather, suede}}, {name: "Sandals", price: 8900, plural: true, mats: []*material{leather}},
			{name: "Derby Shoes", price: 18900, plural: true, mats: []*material{leather, suede}}, {name: "Hiking Boots", price: 19900, plural: true, mats: []*material{leather, nylon, suede}},
			{name: "Espadrilles", price: 6900, plural: true, mats: []*material{canvas, suede, linen}}, {name: "Ankle Boots", price: 22900, plural: true, mats: []*material{leather, suede}},
		},
		mats:     []*material{leather, suede, canvas},
		styles:   []style{{"Lug-Sole", ""}, {"Minimal", ""}, {"Padded", ""}, {"Lace-Up", ""}, {"Slip-On", ""}, {"Low-Top", ""}},
		sizes:    shoeSizes,
		colours:  leatherColours,
		fits:     []string{"True to size; half sizes should size up.", "A roomy toe box; if you are between sizes, size down.", "Runs slightly narrow, so wide feet should size up."},
		features: []string{"A waterproof membrane keeps feet dry on wet pavements.", "Goodyear-welted, so they can be resoled again and again.", "A cushioned cork footbed that moulds to your foot.", "Natural rubber soles with plenty of grip."},
		praise:   []string{"made to walk in all day", "shoes to resole rather than replace", "at home in the city and on the trail"},
	},
	{
		cat: 12, weight: 5,
		types: []productType{
			{name: "Scarf", price: 5900, mats: []*material{merino, cashmere, lambswool, linen, silk}}, {name: "Beanie", price: 3500, mats: []*material{merino, cashmere, lambswool}},
			{name: "Bucket Hat", price: 3900, mats: []*material{canvas, nylon, corduroy, linen}}, {name: "Baseball Cap", price: 2900, mats: []*material{canvas, cotton, corduroy, nylon}},
			{name: "Wrap", price: 8900, mats: []*material{cashmere, merino, linen}}, {name: "Gloves", price: 4900, plural: true, mats: []*material{leather, merino, cashmere}},
		},
		mats:     []*material{merino, cashmere, lambswool, canvas},
		styles:   []style{{"Fisherman", ""}, {"Oversized", ""}, {"Fringed", ""}, {"Waffle-Knit", ""}, {"Ribbed", ""}, {"Classic", ""}},
		sizes:    oneSize,
		colours:  apparelColours,
		fits:     []string{"One size that fits most adults.", "Generously sized to wrap twice."},
		features: []string{"Made on small looms in a mill that has run since the eighteen hundreds.", "Finished by hand with a rolled edge.", "A waterproof, packable design for showers."},
		praise:   []string{"the finishing touch", "a small luxury for cold days", "easy to pack and hard to lose"},
	},
	{
		cat: 14, weight: 9,
		types: []productType{
			{name: "Mug", price: 2400, mats: []*material{stoneware, porcelain}}, {name: "Dinner Plate Set", price: 6900, mats: []*material{stoneware, porcelain}},
			{name: "Serving Bowl", price: 4900, mats: []*material{stoneware, porcelain, oak, glass}}, {name: "Pour-Over Set", price: 5900, mats: []*material{stoneware, porcelain, glass}},
			{name: "Carafe", price: 3900, mats: []*material{glass}}, {name: "Tumbler Set", price: 3500, mats: []*material{glass}},
			{name: "Chopping Board", price: 4500, mats: []*material{oak}, plain: true}, {name: "Casserole Dish", price: 14900, mats: []*material{castIron, stoneware}},
			{name: "Salad Servers", price: 2900, plural: true, mats: []*material{oak}, plain: true}, {name: "Teapot", price: 4900, mats: []*material{stoneware, porcelain, glass, castIron}},
		},
		mats:     []*material{stoneware, porcelain, glass, oak},
		styles:   []style{{"Stackable", ""}, {"Footed", ""}, {"Everyday", ""}, {"Low", ""}, {"Tall", ""}},
		sizes:    colourOnly,
		colours:  homeColours,
		fits:     []string{"Sized for everyday meals and generous second helpings.", "Stacks neatly to save cupboard space."},
		features: []string{"Each piece is made by hand, so sizes and glazes vary slightly.", "Made in a small workshop powered by renewable energy.", "Designed to go from oven to table."},
		praise:   []string{"made for everyday use", "simple enough for every meal", "a gift that gets used"},
	},
	{
		cat: 15, weight: 6,
		types: []productType{
			{name: "Duvet Cover", price: 12900, mats: []*material{homeLinen, percale, sateen}, sizes: bedSizes}, {name: "Sheet Set", price: 14900, mats: []*material{homeLinen, percale, sateen}, sizes: bedSizes},
			{name: "Pillowcase Pair", price: 3900, mats: []*material{homeLinen, percale, sateen}}, {name: "Bath Towel", price: 3500, mats: []*material{terry, homeLinen}},
			{name: "Bath Sheet", price: 4900, mats: []*material{terry}}, {name: "Bathrobe", price: 8900, mats: []*material{terry, homeLinen}, sizes: apparelSizes},
			{name: "Quilt", price: 17900, mats: []*material{homeLinen, percale}, sizes: bedSizes}, {name: "Throw", price: 9900, mats: []*material{lambswool, merino, homeLinen}},
		},
		mats:     []*material{homeLinen, percale, sateen, terry},
		styles:   []style{{"Gingham", ""}, {"Striped", ""}, {"Piped", ""}, {"Frayed-Edge", ""}, {"Classic", ""}},
		sizes:    oneSize,
		colours:  homeColours,
		fits:     []string{"Generously cut to tuck in properly.", "Oversized for a proper wrap after a bath."},
		features: []string{"Oeko-Tex certified, with no harmful dyes or finishes.", "Pre-washed, so it is soft from the first night.", "Hidden button closures and corner ties."},
		praise:   []string{"made for slow mornings", "the easiest upgrade to a bedroom", "made to be washed and used"},
	},
	{
		cat: 16, weight: 7,
		types: []productType{
			{name: "T-Shirt", price: 1900, mats: []*material{cotton}}, {name: "Hoodie", price: 3900, mats: []*material{cotton, fleece}},
			{name: "Rain Jacket", price: 5900, mats: []*material{nylon}}, {name: "Dungarees", price: 4500, plural: true, mats: []*material{denim, corduroy, twill}},
			{name: "Leggings", price: 1900, plural: true, mats: []*material{cotton}}, {name: "Sweater", price: 4500, mats: []*material{merino, lambswool, cotton}},
			{name: "Pyjama Set", price: 3500, mats: []*material{cotton, flannel}}, {name: "Puffer Jacket", price: 6900, mats: []*material{nylon}},
		},
		mats:     []*material{cotton, fleece, nylon, denim},
		styles:   []style{{"Striped", ""}, {"Printed", ""}, {"Relaxed", ""}, {"Reversible", ""}, {"Everyday", ""}},
		sizes:    kidsAges,
		colours:  kidsColours,
		fits:     []string{"Cut with room to grow; turn-up cuffs add a season of wear.", "Sized by age; if in doubt, size up."},
		features: []string{"Reinforced knees and elbows for climbing.", "Reflective details for dark school runs.", "Name label inside, because things go missing."},
		praise:   []string{"built for playgrounds and puddles", "tough enough to hand down", "easy for small hands to put on"},
	},
}
