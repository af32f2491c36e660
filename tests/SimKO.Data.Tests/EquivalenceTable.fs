/// The equivalence table: answer pairs in the formats of the shared datasets (MATH-500, AIME/AMC, Minerva,
/// OlympiadBench, GSM8K), each judged equal or not, in both directions.
module SimKO.Data.Tests.EquivalenceTable

open Expecto
open SimKO.Data.Answers

/// (prediction, reference, equivalent?) — the reference side is always a format that occurs in the files.
let cases: (string * string * bool) list =
    [
      // Integers and decimals (GSM8K, AIME, AMC)
      "18", "18", true
      "18.00", "18", true
      "18.5", "18", false
      "1,080", "1080", true
      "1080", "1,080", true
      "850,000", "850000", true
      "109,200,000", "109200000", true
      "025", "25", true
      "073", "73", true
      "27.0", "27", true
      "-1.0", "-1", true
      "3159.0", "3159", true
      "26", "27.0", false
      """\$18.90""", "18.9", true
      """\$36""", "36", true
      """\$32,\!348""", "32348", true
      "58,500", "58500", true
      """10,\!080""", "10080", true
      """11,\! 111,\! 111,\! 100""", "11111111100", true
      """11,\! 111,\! 111,\! 100""", "11111111000", false
      ".0000672", "0.0000672", true
      ".35625", "0.35625", true
      "326.5", """\frac{653}{2}""", true
      "1.25", """\frac54""", true
      "0.15", """\frac{3}{20}""", true
      "3.21", "3.2", false
      "4.5", "4.50", true
      "-50", "-50.0", true
      "-50", "50", false
      "+2", "2", true
      "1538", "1539", false
      "109200001", "109,200,000", false
      "1073741824", "2^{30}", true
      "12.5", "12.5001", true
      "0.5613", "0.56130001", true
      // Scientific notation (Minerva)
      "4.5e33", """4.5 \times 10^{33}""", true
      "3.83e35", """3.83\times10^{35}""", true
      "1e-5", "10^{-5}", true
      "1e-5", "1e-4", false
      "2.88e-19", """2.88 \cdot 10^{-19}""", true
      "7.4e-12", """7.40\times 10^{-12}""", true
      "5.47e5", "547000", true
      "1.4903e4", "14903", true
      "2.7778e-6", "2.78e-6", false
      "6630", """6.63\times10^3""", true
      "0.006", """6 \times 10^{-3}""", true
      "3e8", """3\times10^{8}""", true
      "8.7e8", """8.7\times10^{9}""", false
      "0", "2.88e-19", false
      // Fractions
      """\frac{14}{3}""", "14/3", true
      """\dfrac{17}{50}""", "0.34", true
      """\tfrac{1}{2}""", """\frac12""", true
      """\frac43""", """\frac{4}{3}""", true
      """\frac 59""", "5/9", true
      """\frac9{19}""", """\frac{9}{19}""", true
      """\frac65""", "1.2", true
      """\frac{270}7\text{ degrees}""", """\frac{270}{7}""", true
      """\frac{3}{56}""", """\frac{3}{65}""", false
      """\frac{11}{36}""", "0.30556", true
      """\frac{1}{3}""", "0.33", false
      """-\frac{35}{9}""", """\frac{-35}{9}""", true
      """-\frac{35}{9}""", """\frac{35}{9}""", false
      """\frac{1997}{2}""", "998.5", true
      """\frac{448}{15625}""", "0.028672", true
      """1\frac{4}{5}""", """\frac{9}{5}""", true
      """137 \frac{1}{2}""", "137.5", true
      """\frac{3}{2}""", "1.5", true
      "-1./3", """-\frac{1}{3}""", true
      "-3./2", "-1.5", true
      // Radicals and pi
      """3\sqrt{13}""", """\sqrt{117}""", true
      """11\sqrt2""", """11\sqrt{2}""", true
      """70 \sqrt{2}""", """70\sqrt2""", true
      """\sqrt{51}""", "7.1414", true
      """\sqrt{51}""", "7.14", false
      """\frac{3\sqrt{3}}{4}""", """\frac{3}{4}\sqrt3""", true
      """\frac{\sqrt{3}}{3}""", """\frac{1}{\sqrt{3}}""", true
      """-\sqrt{3}""", """\sqrt{3}""", false
      """2\sqrt{113}""", """\sqrt{452}""", true
      """1+2\sqrt{3}""", """2\sqrt3+1""", true
      """11 \sqrt{5} + 11""", """11(\sqrt5+1)""", true
      """\pi""", "3.14159", true
      """\pi""", "3.14", false
      """288 \pi""", """288\pi""", true
      """7\pi""", "21.9911", true
      """18+2\pi""", """2\pi+18""", true
      """\frac{20000}{\pi}""", """20000/\pi""", true
      """12\pi""", """6\pi""", false
      "8 π", """8 \pi""", true
      """\frac{1}{\sqrt[3]{4}}""", """$2^{-2 / 3}$""", true
      """-\pi/6""", """-\frac{\pi}{6}""", true
      """\frac{9\sqrt3}{20}""", """$\frac{9 \sqrt{3}}{20}$""", true
      "0.26795", """$2-\sqrt{3}$""", true
      "2^{1008}", """$2^{1009}$""", false
      """\sqrt[100]{10}""", """$10^{1 / 100}$""", true
      """\sqrt{-4}""", "2i", true
      // Degrees and percent
      "90", """90^\circ""", true
      """145^{\circ}""", """145^\circ""", true
      "30°", """30^\circ""", true
      """67^\circ""", """76^\circ""", false
      "120 degrees", """120^\circ""", true
      """106^{ \circ }""", """106^\circ""", true
      "0.5", """50\%""", true
      "12.5", """12.5\%""", true
      "0.52", """25\%""", false
      // Units
      "864", """864 \mbox{ inches}^2""", true
      "15", """15\mbox{ cm}^2""", true
      "5.4", """5.4 \text{ cents}""", true
      "4.5", """5.4 \text{ cents}""", false
      """1.6 \mathrm{~cm}""", "1.6", true
      "45 minutes", "45", true
      """60 \text{ km/h}""", "60", true
      """\$19.80""", """\$18.90""", false
      // Text answers
      "Evelyn", """\text{Evelyn}""", true
      "evelyn", """\text{Evelyn}""", true
      "Navin", """\text{Evelyn}""", false
      "East", """\text{east}""", true
      "west", """\text{east}""", false
      """\text{odd}""", """\text{even}""", false
      "ellipse", """\text{ellipse}""", true
      "C", """\text{(C)}""", true
      "(C)", """\text{(C)}""", true
      """\text{(B)}""", """\text{(E)}""", false
      "tase", "east", false
      "MR = SRMC", "MR=SRMC", true
      // Numbers in other bases
      "52_{8}", "52_8", true
      "4210_5", "4210_{5}", true
      "2516", "2516_8", false
      "402_5", "204_5", false
      // Complex numbers
      "6-5i", "6 - 5i", true
      "7i-2", "-2 + 7i", true
      "1 + 274 i", "1+274i", true
      "6-9i", "6+9i", false
      "1-12i", "1 - 12i", true
      """-8-8i\sqrt{3}""", """-8-8 \sqrt{3} i""", true
      """1+i\sqrt3""", """1+\sqrt{3} i""", true
      // Equations
      "5", "x=5", true
      "2x+3", "y = 2x + 3", true
      "y=-2x", "y = -2x", true
      "-5x+7y-11z-4=0", "5x - 7y + 11z + 4 = 0", true
      "5x-7y+11z-4=0", "5x - 7y + 11z + 4 = 0", false
      """\frac{9\sqrt2}{32}""", """$M=\frac{9}{32} \sqrt{2}$""", true
      "n+1", "$k=n+1$", true
      "n-1", "$k=n+1$", false
      "x=6", "x=5", false
      // Expressions
      "-q+p", "p - q", true
      "q - p", "p - q", false
      "(x-1)(x^4+x^2+1)", "x^5 - x^4 + x^3 - x^2 + x - 1", true
      "ab+2a+5b+10", "(a+5)(b+2)", true
      """\frac{\cos x}{\sin x}""", """\cot x""", true
      """\tan x""", """\cot x""", false
      "2(k+1)", "2k+2", true
      "2(3r^2-2r-12)", "6r^2-4r-24", true
      "8n^2+4n+2", "8n^2 + 4n + 1", false
      """\frac{9a+11}{20}""", """\frac{11+9a}{20}""", true
      "3-13x", "-13x+3", true
      "5(3x-16)", "15x - 80", true
      "3r^2", "3R^2", false
      """mn-\lfloor\frac{m}{2}\rfloor""", """$m n-\lfloor m / 2\rfloor$""", true
      """a M^{1/3}/(G M^{2/3}+b)""", """\frac{a M^{1 / 3}}{G M^{2 / 3}+b}""", true
      """\sinh(at)""", """\frac{1}{2}(\exp{a*t} - \exp{-a*t})""", true
      """\frac{2\pi}{\omega}""", """2 \pi / \omega""", true
      """\cos 2t + \sin 2t""", """\sqrt{2} \cos (2 t-\pi / 4)""", true
      """ce^{-2t}+e^t/3""", """\frac{e^{t}} {3}+c e^{-2 t}""", true
      """\frac{1}{3}e^t""", """e^{t} / 3""", true
      """\ln(2)+\frac{\pi i}{3}""", """\ln 2 + i\pi / 3""", true
      """\frac{x}{2}-\frac14+ce^{-2x}""", """x / 2-1 / 4+c e^{-2 x}""", true
      "-(t^2+t+3)", "-t^2 - t - 3", true
      """\frac{1}{s-a}""", """\frac{1}{s+a}""", false
      """I(0)\exp(-t/(RC))""", """I(0) e^{-\frac{t}{R C}}""", true
      """\frac{\lambda_{red}}{\sqrt2}""", """\lambda_{\text {red}} / \sqrt{2}""", true
      """\lfloor\log_2 n\rfloor+1""", """$\left\lfloor\log _{2} n\right\rfloor+1$""", true
      """\frac{d!}{2k(d-k)!}""", """$\frac{d !}{2 k(d-k) !}$""", true
      // Intervals
      "(3, 4]", "(3,4]", true
      "[3,4)", "(3,4]", false
      """(-\infty,0]""", """(-\infty, 0]""", true
      """(-\infty,0)""", """(-\infty, 0]""", false
      """(2, \infty)""", """(2,\infty)""", true
      """(3,\infty)\cup(-\infty,2)""", """(-\infty, 2) \cup (3, \infty)""", true
      "(0,36)", """(0,9) \cup (9,36)""", false
      "[-2,7]", """x \in [-2,7]""", true
      "(0.6, 8/3]", """\left(\frac{3}{5},\frac{8}{3}\right]""", true
      """[\pi^2/8, 5\pi^2/4]""", """\left[ \frac{\pi^2}{8}, \frac{5 \pi^2}{4} \right]""", true
      "[0.5,8]", """$[\frac{1}{2}, 8]$""", true
      """(-\sqrt3,\sqrt3)""", """(-\sqrt{3}, \sqrt{3})""", true
      // Tuples and points
      """(3,\frac{\pi}{2})""", """\left( 3, \frac{\pi}{2} \right)""", true
      "(6, 31, -1)", "(6,31,-1)", true
      "(31,6,-1)", "(6,31,-1)", false
      "(15, -29)", "(15,-29)", true
      "(1,-16,-4)", "(1,-16,-4,43)", false
      "(4, 0.30103)", """$(4, \log _{10} 2)$""", true
      "(1.5,-13)", """\left( \frac{3}{2}, -13 \right)""", true
      // Matrices and vectors
      """\begin{pmatrix} -\frac13 \\ \frac23 \\ \frac53 \end{pmatrix}""", """\begin{pmatrix} -1/3 \\ 2/3 \\ 5/3 \end{pmatrix}""", true
      """\begin{pmatrix}-1&0\\0&-1\end{pmatrix}""", """\begin{pmatrix} -1 & 0 \\ 0 & -1 \end{pmatrix}""", true
      """\begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}""", """\begin{pmatrix} -1 & 0 \\ 0 & -1 \end{pmatrix}""", false
      "(-2,-14,-7)", """\begin{pmatrix} -2 \\ -14 \\ -7 \end{pmatrix}""", true
      // Lists, sets, plus-minus, multiple answers (OlympiadBench)
      "-2, 1", "1,-2", true
      "7,5,3", "3, 5, 7", true
      "3, 5", "3, 5, 7", false
      """1+\sqrt{19}, 1-\sqrt{19}""", """1 \pm \sqrt{19}""", true
      """3-2\sqrt2, 3+2\sqrt2""", """3 \pm 2 \sqrt{2}""", true
      """1+\sqrt{19}""", """1 \pm \sqrt{19}""", false
      """-2, 1-\sqrt5, 1+\sqrt5""", """\{1\pm\sqrt{5},-2\}""", true
      "84,69", "$69$,$84$", true
      "(3,2),(1,1)", "$(1,1), (3,2)$", true
      "(1,1),(2,3)", "$(1,1), (3,2)$", false
      "0, 2, -2", "$-2,0,2$", true
      "0.5, 32/9", """$\frac{32}{9}$,$\frac{1}{2}$""", true
      "f(x)=2-x, f(x)=x", "$f(x)=x$,$f(x)=2-x$", true
      "60, 90", """$90^{\circ}$,$60^{\circ}$""", true
      "2500, 7500", "2500,7500", true
      "1,2,3", "1,2", false
      // Wrappers and noise
      "5", """\boxed{5}""", true
      "113", """\textbf{(113) }""", true
      "127", """\mathbf{127} """, true
      "104", "104.", true
      "1.4", """$\frac{7}{5}$""", true
      """\left(3,\frac{\pi}{2}\right)""", """\left( 3, \frac{\pi}{2} \right)""", true
      "0.5", """\displaystyle \frac{1}{2}""", true
      // Unparseable model output: normalised string comparison, never an exception
      "np.arcsin(10/13)", "np.arcsin(10/13)", true
      "", "5", false
      "I don't know", "5", false
      """\frac{1}{0}""", """\frac{2}{0}""", false
      "((((", "(((", false
      """\frac{""", """\frac{1}{2}""", false
    ]

/// (prediction, reference, unit, equivalent?) — OlympiadBench's unit field.
let unitCases: (string * string * string * bool) list =
    [ "60 km/h", "60", "km/h", true
      "60", "60", "km/h", true
      "45 minute", "45", "minute", true
      """15 \text{cm}^2""", "15", "$cm^2$", true
      "61 km/h", "60", "km/h", false ]

let tests =
    testList "equivalence table" [
        test "the table has at least 150 cases, both verdicts well represented" {
            Expect.isGreaterThanOrEqual cases.Length 150 "cases"
            let equal = cases |> List.filter (fun (_, _, e) -> e) |> List.length
            Expect.isGreaterThan equal 50 "equal cases"
            Expect.isGreaterThan (cases.Length - equal) 50 "unequal cases"
        }
        testList "prediction against reference" [
            for i, (pred, reference, expected) in List.indexed cases ->
                test (sprintf "%03d %s %s %s" i pred (if expected then "=" else "<>") reference) {
                    let got = MathEquivalence.AreEquivalent(pred, reference)
                    Expect.equal got expected (sprintf "AreEquivalent(%A, %A)" pred reference)
                    let back = MathEquivalence.AreEquivalent(reference, pred)
                    Expect.equal back expected (sprintf "AreEquivalent(%A, %A) (reversed)" reference pred)
                }
        ]
        testList "with a unit" [
            for i, (pred, reference, unit, expected) in List.indexed unitCases ->
                test (sprintf "%d %s %s %s [%s]" i pred (if expected then "=" else "<>") reference unit) {
                    Expect.equal (MathEquivalence.AreEquivalent(pred, reference, unit)) expected (sprintf "AreEquivalent(%A, %A, unit %A)" pred reference unit)
                }
        ]
    ]
