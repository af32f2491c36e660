/// AnswerExtraction: the last \boxed{} / \fbox{} with balanced braces, GSM8K's ####, "the answer is".
module SimKO.Data.Tests.AnswerExtractionTests

open Expecto
open SimKO.Data.Math

let private cases : (string * string option) list = [
    "so $x = \\boxed{5}$.", Some "5"
    "\\boxed{1} first, then \\boxed{2}", Some "2"
    "\\boxed{\\frac{1}{2}}", Some "\\frac{1}{2}"
    "\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", Some "\\left( 3, \\frac{\\pi}{2} \\right)"
    "\\fbox{42}", Some "42"
    "\\boxed{1} and \\fbox{7}", Some "7"
    "\\boxed 5$", Some "5"
    "\\boxed{\\{1, 2\\}}", Some "\\{1, 2\\}"
    "\\boxed{ 12 }", Some "12"
    "good \\boxed{3} then broken \\boxed{4", Some "3"
    "\\boxed{", None
    "Janet sells 9 eggs.\nShe makes $18.\n#### 18", Some "18"
    "#### 1,080\n", Some "1,080"
    "So the answer is 42.", Some "42"
    "The answer is $\\frac{3}{4}$.", Some "\\frac{3}{4}"
    "Final answer: (B)", Some "(B)"
    "the answer is 5\nwhich we check", Some "5"
    "no marker here", None
    "", None
]

let tests =
    testList "AnswerExtraction" [
        for i, (text, expected) in List.indexed cases do
            test (sprintf "%02d %s" i (text.Replace("\n", "\\n"))) {
                Expect.equal (AnswerExtraction.Extract text |> Option.ofObj) expected text
            }
        test "boxed wins over #### and 'the answer is'" {
            Expect.equal (AnswerExtraction.Extract "the answer is 3 \\boxed{4}\n#### 5") "4" "boxed first"
            Expect.equal (AnswerExtraction.Extract "the answer is 3\n#### 5") "5" "#### second"
        }
        test "null is no answer" { Expect.isNull (AnswerExtraction.Extract null) "null" }
    ]
