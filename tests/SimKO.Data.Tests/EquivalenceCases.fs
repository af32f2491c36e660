/// The equivalence table: (prediction, reference, equivalent?) in the answer formats of the
/// benchmark files (math500, aime, amc23 numbers like 27.0, minerva's physics answers,
/// olympiadbench's lists, tuples and units, gsm8k's plain numbers) and the ways models write them.
module SimKO.Data.Tests.EquivalenceCases

let cases : (string * string * bool) list = [
    // integers and decimals: amc23 writes 27.0, aime 025, gsm8k 1,080
    "27", "27.0", true
    "27.00", "27.0", true
    "28", "27.0", false
    "025", "25", true
    "25", "025", true
    "73", "073", true
    "37", "073", false
    "1,080", "1080", true
    "1080", "1,080", true
    "70,000", "70000", true
    "70000.0", "70,000", true
    "7000", "70000", false
    "1,234,567", "1234567", true
    "3.50", "3.5", true
    "3.05", "3.5", false
    "-1", "-1.0", true
    "1", "-1.0", false
    "18", "18", true
    "18.", "18", true
    "0", "0", true
    "0", "0.0", true
    "102018", "102,018", true
    // scientific notation (minerva)
    ".0000672", "0.0000672", true
    "6.72 \\times 10^{-5}", ".0000672", true
    "6.72e-5", ".0000672", true
    "6.72e-4", ".0000672", false
    "3.3 \\times 10^{12}", "3.3e12", true
    "3.3e12", "3.4e12", false
    "3 \\times 10^8", "3e8", true
    "300000000", "3e8", true
    "2.55 \\times 10^{-10}", "2.55e-10", true
    "0", "2.55e-10", false
    "1870000", "1.87e6", true
    "1.87 \\cdot 10^6", "1.87e6", true
    "7.35e14", "7.353e14", false
    "7.3531e14", "7.353e14", true
    "1.6", "1.6", true
    "1.60", "1.6", true
    "1.7", "1.6", false
    "2.780", "2.78", true
    // relative tolerance 1e-4
    "4.6667", "\\frac{14}{3}", true
    "4.67", "\\frac{14}{3}", false
    "0.33333", "\\frac{1}{3}", true
    "0.33", "\\frac{1}{3}", false
    // fractions
    "0.5", "\\frac{1}{2}", true
    "\\frac{1}{2}", "0.5", true
    "\\dfrac{14}{3}", "\\frac{14}{3}", true
    "\\tfrac{14}{3}", "\\frac{14}{3}", true
    "14/3", "\\frac{14}{3}", true
    "\\frac{28}{6}", "\\frac{14}{3}", true
    "\\frac{3}{14}", "\\frac{14}{3}", false
    "\\frac32", "\\frac{3}{2}", true
    "1.5", "\\frac{3}{2}", true
    "\\frac{2}{3}", "\\frac{3}{2}", false
    "-0.96", "-\\frac{24}{25}", true
    "\\frac{-24}{25}", "-\\frac{24}{25}", true
    "\\frac{24}{25}", "-\\frac{24}{25}", false
    "\\frac{35}{64}", "\\frac{35}{64}", true
    "35/64", "\\frac{35}{64}", true
    "\\frac{1997}{2}", "\\frac{1997}{2}", true
    "998.5", "\\frac{1997}{2}", true
    "998", "\\frac{1997}{2}", false
    "\\frac{1}{6084}", "$\\frac{1}{6084}$", true
    "\\frac{9}{256}", "\\frac{9}{256}", true
    // mixed numbers (math500 writes 1\frac{4}{5})
    "\\frac{9}{5}", "1\\frac{4}{5}", true
    "1.8", "1\\frac{4}{5}", true
    "\\frac{4}{5}", "1\\frac{4}{5}", false
    "137.5", "137 \\frac{1}{2}", true
    "\\frac{275}{2}", "137 \\frac{1}{2}", true
    // percent, dollars, degrees, units
    "8\\%", "$8 \\%$", true
    "8", "$8 \\%$", true
    "0.08", "$8 \\%$", true
    "8%", "0.08", true
    "80\\%", "$8 \\%$", false
    "36", "\\$36", true
    "\\$36.00", "\\$36", true
    "$\\$ 36$", "\\$36", true
    "18 dollars", "18", true
    "\\$18", "18", true
    "27 \\text{ miles}", "27", true
    "27\\text{ miles}", "28", false
    "6\\text{ cm}^2", "6", true
    "10 \\mathrm{~cm}", "10", true
    "90^\\circ", "90", true
    "90^{\\circ}", "90", true
    "90°", "90", true
    "60^\\circ", "90", false
    "120 degrees", "120", true
    "5 cm", "5", true
    // radicals
    "3\\sqrt{13}", "\\sqrt{117}", true
    "3 \\sqrt{13}", "3\\sqrt{13}", true
    "2\\sqrt{13}", "3\\sqrt{13}", false
    "\\sqrt{66}", "\\sqrt{66}", true
    "\\sqrt{65}", "\\sqrt{66}", false
    "\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", true
    "\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", true
    "\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{2}}{2}", false
    "11+11\\sqrt{5}", "11 \\sqrt{5} + 11", true
    "11 \\sqrt{5} - 11", "11 \\sqrt{5} + 11", false
    "2", "\\sqrt[3]{8}", true
    "2^{1009}", "$2^{1009}$", true
    "2^{1008}", "$2^{1009}$", false
    "\\frac{1}{\\sqrt[3]{4}}", "$2^{-2 / 3}$", true
    "\\sqrt[100]{10}", "$10^{1 / 100}$", true
    "2^{5000}", "3^{5000}", false
    // pi
    "\\frac{1}{2}\\pi", "\\frac{\\pi}{2}", true
    "\\pi/2", "\\frac{\\pi}{2}", true
    "1.5708", "\\frac{\\pi}{2}", true
    "\\frac{\\pi}{3}", "\\frac{\\pi}{2}", false
    "6.2832", "2\\pi", true
    "\\frac{5\\pi}{6}", "\\frac{5}{6} \\pi", true
    "\\frac{\\pi}{6}", "\\frac{5}{6} \\pi", false
    "π/2", "\\frac{\\pi}{2}", true
    // expressions, compared at points
    "p-q", "p - q", true
    "-q + p", "p - q", true
    "q - p", "p - q", false
    "-80 + 15x", "15x - 80", true
    "15x + 80", "15x - 80", false
    "(x-1)(x+1)", "x^2 - 1", true
    "(x+1)^2", "x^2+1", false
    "\\frac{1}{2(n+1)}", "$\\frac{1}{2 n+2}$", true
    "\\frac{1}{2n+1}", "$\\frac{1}{2 n+2}$", false
    "2n", "$2 n$", true
    "n+n", "$2 n$", true
    "n^2", "$2 n$", false
    "\\frac{ab}{2}", "$\\frac{a b}{2}$", true
    "ab/2", "$\\frac{a b}{2}$", true
    "\\frac{a}{2}", "$\\frac{a b}{2}$", false
    "b+a", "a+b", true
    "x", "y", false
    "-(t^2+t+3)", "-t^2 - t - 3", true
    "-t^2 + t - 3", "-t^2 - t - 3", false
    "\\frac{1}{15}e^{-2t}", "\\frac{e^{-2 t}}{15}", true
    "\\frac{e^{2 t}}{15}", "\\frac{e^{-2 t}}{15}", false
    "\\frac{c}{x^2} - \\frac{\\cos(2x)}{2x^2}", "c x^{-2}-\\frac{\\cos (2 x)}{2 x^{2}}", true
    "\\frac{c}{x^2} + \\frac{\\cos(2x)}{2x^2}", "c x^{-2}-\\frac{\\cos (2 x)}{2 x^{2}}", false
    "-\\frac{1}{2\\sqrt{X}}", "-\\frac{1}{2} X^{-\\frac{1}{2}}", true
    "100\\sqrt{p}", "100 p^{\\frac{1}{2}}", true
    "10\\sqrt{p}", "100 p^{\\frac{1}{2}}", false
    "\\frac{s+\\sigma}{s^2+2s\\sigma+\\sigma^2+\\omega_d^2}", "\\frac{s+\\sigma}{(s+\\sigma)^{2}+\\omega_{d}^{2}}", true
    "\\frac{s+\\sigma}{s^2+\\sigma^2+\\omega_d^2}", "\\frac{s+\\sigma}{(s+\\sigma)^{2}+\\omega_{d}^{2}}", false
    "x_0\\cos(\\omega t) + \\frac{\\dot{x}_0}{\\omega}\\sin(\\omega t)", "x_{0} \\cos (\\omega t)+$ $\\dot{x}_{0} \\sin (\\omega t) / \\omega", true
    "(t+\\frac{\\sin(2t)}{2})u(t)", "(t + \\frac{1}{2} \\sin{2t}) u(t)", true
    "\\hbar\\omega(v+\\frac{1}{2}) - \\frac{e^2E_0^2}{2m\\omega^2}", "\\hbar \\omega(v+1 / 2)-\\frac{E_{0}^{2} e^{2}}{2 m \\omega^{2}}", true
    "\\frac{e^{2it}}{2+2i}+Ce^{-2t}", "\\frac{e^{2 i t}}{(2+2 i)}+C e^{-2 t}", true
    "\\sin(2x)", "2\\sin x \\cos x", true
    "1", "\\sin^2 x + \\cos^2 x", true
    "\\log 250", "\\log_{10} 250", true
    "2", "\\ln(e^2)", true
    "10", "\\binom{5}{2}", true
    "120", "5!", true
    "15x - 80", "15x-80", true
    // equations against values
    "x = 5", "5", true
    "5", "x=5", true
    "x=4", "5", false
    "y=3+2x", "y = 2x + 3", true
    "2x+3", "y = 2x+3", true
    "k = 3", "3", true
    "2 n+1007", "$f(n) = 2 n+1007$", true
    "f(n) = 2n + 1007", "2 n+1007", true
    "f(n) = 2n + 1006", "2 n+1007", false
    "\\frac{10^{5} L_{\\odot}}{0.007 c^{2} M_{\\odot}^{6}} M^{6}", "\\frac{dM}{dt}=\\frac{10^{5} L_{\\odot}}{0.007 c^{2} M_{\\odot}^{6}} M^{6}", true
    // intervals
    "(2, \\infty)", "(2,\\infty)", true
    "[2,\\infty)", "(2,\\infty)", false
    "\\left(2, \\infty\\right)", "(2,\\infty)", true
    "x \\in (2, \\infty)", "(2,\\infty)", true
    "(5,\\infty)", "(2,\\infty)", false
    "(-\\infty,3]\\cup[5,\\infty)", "(-\\infty, 3] \\cup [5, \\infty)", true
    "(-\\infty,3)\\cup[5,\\infty)", "(-\\infty, 3] \\cup [5, \\infty)", false
    "[0, 1]", "[0,1]", true
    "[0, 1)", "[0,1]", false
    // tuples, element by element and in order
    "(15, -29)", "(15,-29)", true
    "(-29, 15)", "(15,-29)", false
    "(15,-29,1)", "(15,-29)", false
    "(3,\\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)", true
    "(3, 1.5708)", "\\left( 3, \\frac{\\pi}{2} \\right)", true
    "(3, \\pi)", "\\left( 3, \\frac{\\pi}{2} \\right)", false
    "(0.25, 1/27)", "$(\\frac{1}{4}, \\frac{1}{27})$", true
    "(8, -2)", "(8,-2)", true
    // sets and lists, in any order
    "1,-2", "-2,1", true
    "-2, 1", "-2,1", true
    "-2", "-2,1", false
    "-2,1,3", "-2,1", false
    "2, 1", "\\{1, 2\\}", true
    "\\{2,1\\}", "\\{1,2\\}", true
    "1+\\sqrt{19}, 1-\\sqrt{19}", "1 \\pm \\sqrt{19}", true
    "1 \\pm \\sqrt{19}", "1-\\sqrt{19}, 1+\\sqrt{19}", true
    "1+\\sqrt{19}", "1 \\pm \\sqrt{19}", false
    "(9,3),(6,3),(54,5),(9,5)", "$(6,3),(9,3),(9,5),(54,5)$", true
    "(6,3),(9,3),(9,5)", "$(6,3),(9,3),(9,5),(54,5)$", false
    "(3,6),(9,3),(9,5),(54,5)", "$(6,3),(9,3),(9,5),(54,5)$", false
    "2, -1, -18", "$2,-1,-18$", true
    "5, -2, 1/3", "$\\frac{1}{3},-2,5$", true
    "5, -2, 1/2", "$\\frac{1}{3},-2,5$", false
    "69, 84", "$69$,$84$", true
    "60, 90", "$90^{\\circ}$,$60^{\\circ}$", true
    "1, 3, 5, 15", "1, 3, 5, 15", true
    "15, 5, 3, 1", "1, 3, 5, 15", true
    "3 and 5", "5, 3", true
    // matrices
    "\\begin{pmatrix}-1&0\\\\0&-1\\end{pmatrix}", "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", true
    "\\begin{pmatrix} 1 & 0 \\\\ 0 & -1 \\end{pmatrix}", "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", false
    "\\begin{pmatrix} 0.2 \\\\ -3.6 \\end{pmatrix}", "\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}", true
    "(0.2, -3.6)", "\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}", true
    "\\begin{bmatrix} 1 & 2 \\end{bmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", false
    // words and multiple choice
    "even", "\\text{even}", true
    "\\text{ even }", "\\text{even}", true
    "\\text{odd}", "\\text{even}", false
    "neve", "\\text{even}", false
    "B", "\\text{(B)}", true
    "(B)", "\\text{(B)}", true
    "\\textbf{(B)}", "\\text{(B)}", true
    "C", "\\text{(B)}", false
    "Monday", "\\text{Monday}", true
    // infinity
    "\\infty", "\\infty", true
    "-\\infty", "\\infty", false
    "∞", "\\infty", true
    // malformed or unknown: normalised text, never an exception
    "\\frac{1}{", "\\frac{1}{2}", false
    "}{", "}{", true
    "", "5", false
    "\\sqrt", "2", false
    "((((", "1", false
    "x^", "x", false
    "\\unknowncmd{3}", "\\unknowncmd{3}", true
    "\\unknowncmd{3}", "\\unknowncmd{4}", false
    "1/0", "2/0", false
    "\\frac{0}{0}", "1", false
]
