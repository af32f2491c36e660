/// MathEquivalence: the table of real answer formats, symmetry, and no exception on any input.
module SimKO.Data.Tests.MathEquivalenceTests

open Expecto
open FsCheck
open FsCheck.FSharp
open SimKO.Data.Math

let private config = { FsCheckConfig.defaultConfig with maxTest = 500 }

let private garbageGen =
    // LaTeX-ish fragments, so random strings reach the parser's corners (unbalanced braces, bare ^, …)
    let pieces = [| "\\frac"; "\\sqrt"; "{"; "}"; "("; ")"; "["; "]"; "^"; "_"; ","; "="; "\\pi"; "x"; "2"; ".5"; "-"; "+"; "/"; "*";
                    "\\left("; "\\right)"; "\\text{"; "\\{"; "\\}"; "\\pm"; "\\cup"; "\\infty"; "%"; "$"; "e"; "!"; " "; "\\\\"; "&";
                    "\\begin{pmatrix}"; "\\end{pmatrix}"; "\\boxed{"; "1,000"; "\\sin"; "\\log_"; "|" |]
    Gen.elements pieces |> Gen.listOf |> Gen.map (String.concat "")

let tests =
    testList "MathEquivalence" [
        testList "table" [
            for i, (prediction, reference, expected) in List.indexed EquivalenceCases.cases do
                test (sprintf "%03d %s ~ %s" i prediction reference) {
                    Expect.equal (MathEquivalence.Equivalent(prediction, reference)) expected
                        (sprintf "Equivalent(%A, %A) should be %b" prediction reference expected)
                }
        ]
        test "the table has at least 150 rows, both equal and not equal" {
            let n = EquivalenceCases.cases.Length
            let equal = EquivalenceCases.cases |> List.filter (fun (_, _, e) -> e) |> List.length
            Expect.isGreaterThanOrEqual n 150 "rows"
            Expect.isGreaterThan equal 50 "equal rows"
            Expect.isGreaterThan (n - equal) 50 "not-equal rows"
        }
        test "every row holds with prediction and reference swapped" {
            let asymmetric =
                EquivalenceCases.cases |> List.filter (fun (p, r, e) -> MathEquivalence.Equivalent(r, p) <> e)
            Expect.isEmpty asymmetric "rows that change when swapped"
        }
        test "null and empty are never equivalent" {
            Expect.isFalse (MathEquivalence.Equivalent(null, "5")) "null prediction"
            Expect.isFalse (MathEquivalence.Equivalent("5", null)) "null reference"
            Expect.isFalse (MathEquivalence.Equivalent("  ", "  ")) "blank"
        }
        testPropertyWithConfig config "no exception on LaTeX-like garbage, and any non-blank text equals itself" <|
            Prop.forAll (Arb.fromGen (Gen.zip garbageGen garbageGen)) (fun (a, b) ->
                MathEquivalence.Equivalent(a, b) |> ignore
                String.length (a.Trim()) = 0 || MathEquivalence.Equivalent(a, a))
    ]
