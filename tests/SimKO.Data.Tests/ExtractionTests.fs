/// Finding the final answer in completions and published solutions.
module SimKO.Data.Tests.ExtractionTests

open Expecto
open SimKO.Data
open SimKO.Data.Answers

let private extract (text: string) =
    let struct (answer, methodUsed) = AnswerExtractor.Extract(text)
    answer, methodUsed

let tests =
    testList "answer extraction" [
        test "the last boxed answer wins" {
            let text = """First \boxed{3}, then a correction: the answer is $\boxed{\frac{14}{3}}$."""
            Expect.equal (extract text) (""" \frac{14}{3}""".Trim(), ExtractionMethod.Boxed) "last box"
        }
        test "nested braces stay inside the box" {
            Expect.equal (AnswerExtractor.LastBoxed """so \boxed{\left( 3, \frac{\pi}{2} \right)} done""") """\left( 3, \frac{\pi}{2} \right)""" "nested"
        }
        test "escaped braces do not count" {
            Expect.equal (AnswerExtractor.LastBoxed """\boxed{\{1\pm\sqrt{5},-2\}}""") """\{1\pm\sqrt{5},-2\}""" "set"
        }
        test "fbox and the space form are boxes too" {
            Expect.equal (AnswerExtractor.LastBoxed """\fbox{42}""") "42" "fbox"
            Expect.equal (AnswerExtractor.LastBoxed """the answer is $\boxed 7$.""") "7" "space form"
        }
        test "an unbalanced last box (a truncated completion) gives no answer" {
            Expect.equal (extract """\boxed{1} and finally \boxed{\frac{1}{2}""") (null, ExtractionMethod.None) "truncated"
        }
        test "a box command with another name is not a box" {
            Expect.isNull (AnswerExtractor.LastBoxed """\boxedfoo{3}""") "\\boxedfoo"
        }
        test "GSM8K's #### line" {
            let solution = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72"
            Expect.equal (extract solution) ("72", ExtractionMethod.Hashes) "####"
        }
        test "'the answer is' as a fallback, without the sentence's period or markdown" {
            Expect.equal (extract "Let's think step by step. So the answer is (B).") ("(B)", ExtractionMethod.AnswerIs) "period"
            Expect.equal (extract "...\n**Final Answer:** $\\frac{1}{2}$") ("\\frac{1}{2}", ExtractionMethod.AnswerIs) "final answer"
            Expect.equal (extract "The answer is 3.5.") ("3.5", ExtractionMethod.AnswerIs) "decimal kept"
        }
        test "a short one-line completion is a bare answer, unless a marker is required" {
            Expect.equal (extract "  42 ") ("42", ExtractionMethod.Whole) "bare"
            let struct (answer, methodUsed) = AnswerExtractor.Extract("42", requireMarker = true)
            Expect.equal (answer, methodUsed) (null, ExtractionMethod.None) "marker required"
        }
        test "a long completion without any marker gives no answer" {
            let text = String.replicate 30 "We compute things here.\n"
            Expect.equal (extract text) (null, ExtractionMethod.None) "no marker"
        }
        test "every balanced box is listed in order" {
            Expect.sequenceEqual (AnswerExtractor.AllBoxed """\boxed{1}, \boxed{x^{2}} and \boxed{3""") [ "1"; "x^{2}" ] "all boxes"
        }
        test "extraction never throws on odd text" {
            for t in [ null; ""; "\\"; "\\boxed"; "\\boxed{"; "}}}{{{"; "####"; "the answer is"; "\\fbox{}"; String.replicate 1000 "{" ] do
                AnswerExtractor.Extract t |> ignore
        }
    ]
