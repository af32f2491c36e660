/// MathGrader: extraction and equivalence together.
module SimKO.Data.Tests.MathGraderTests

open Expecto
open SimKO.Data.Math

let private grade c r = let struct (e, ok) = MathGrader.Grade(c, r) in (Option.ofObj e, ok)

let tests =
    testList "MathGrader" [
        test "a boxed fraction against a decimal reference" {
            Expect.equal (grade "Hence the probability is $\\boxed{\\frac{1}{2}}$." "0.5") (Some "\\frac{1}{2}", true) "boxed"
        }
        test "gsm8k completions with #### and thousands separators" {
            Expect.equal (grade "48 + 24 = 72\n#### 1,080" "1080") (Some "1,080", true) "####"
        }
        test "a bare answer is graded as it is" {
            Expect.equal (grade "x = 5" "5") (Some "x = 5", true) "bare"
            Expect.equal (grade "27" "27.0") (Some "27", true) "amc"
        }
        test "a wrong answer is extracted and marked wrong" {
            Expect.equal (grade "I think the answer is 7." "8") (Some "7", false) "wrong"
        }
        test "the last boxed answer counts" {
            Expect.equal (grade "first \\boxed{3}, on reflection \\boxed{4}" "4") (Some "4", true) "last"
        }
        test "empty completions have no answer" {
            Expect.equal (grade "" "5") (None, false) "empty"
            Expect.equal (grade null "5") (None, false) "null"
        }
    ]
