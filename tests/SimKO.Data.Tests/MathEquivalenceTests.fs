/// MathEquivalence: the table of real answer formats, symmetry, and no exception on any input.
module SimKO.Data.Tests.MathEquivalenceTests

open Expecto
open FsCheck
open FsCheck.FSharp
open SimKO.Data.Math

/// The property suite's fixed seed (tests/Properties/Generators.fs): SIMKO_PROPERTY_SEED=<n> explores others.
let private seed =
    match System.Environment.GetEnvironmentVariable "SIMKO_PROPERTY_SEED" with
    | null | "" -> 20251123UL
    | s -> uint64 s

let private config = { FsCheckConfig.defaultConfig with maxTest = 500; replay = Some(seed, 0x9E3779B97F4A7C15UL, None) }

/// LaTeX-ish fragments without any digit or constant: no concatenation of them has a value.
let private valuelessPieces =
    [| "\\frac"; "\\sqrt"; "{"; "}"; "("; ")"; "["; "]"; "^"; "_"; ","; "="; "-"; "+"; "/"; "*";
       "\\left("; "\\right)"; "\\text{"; "\\{"; "\\}"; "\\pm"; "\\cup"; "%"; "$"; "!"; " "; "\\\\"; "&";
       "\\begin{pmatrix}"; "\\end{pmatrix}"; "\\boxed{"; "\\sin"; "\\log_"; "|" |]

let private garbageGen =
    // LaTeX-ish fragments, so random strings reach the parser's corners (unbalanced braces, bare ^, …)
    let pieces = Array.append valuelessPieces [| "\\pi"; "x"; "2"; ".5"; "\\infty"; "e"; "1,000" |]
    Gen.elements pieces |> Gen.listOf |> Gen.map (String.concat "")

/// Short strings (1–3 pieces, where a parser's corner cases hide) half of the time, any length otherwise.
let private valuelessGen =
    let piece = Gen.elements valuelessPieces
    Gen.oneof [ Gen.choose (1, 3) |> Gen.bind (fun n -> Gen.listOfLength n piece); Gen.listOf piece ]
    |> Gen.map (String.concat "")

/// Numbers as references: integers and decimals, negative too.
let private numberGen =
    Gen.choose (-100000, 100000) |> Gen.map (fun n -> if n % 3 = 0 then string (n / 1000) else sprintf "%g" (float n / 100.0))

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
        testPropertyWithConfig config "LaTeX-like garbage never equals two different numbers (and never throws)" <|
            Prop.forAll (Arb.fromGen (Gen.zip garbageGen (Gen.choose (-1000, 1000)))) (fun (g, n) ->
                let equalsN = MathEquivalence.Equivalent(g, string n)
                let equalsNext = MathEquivalence.Equivalent(g, string (n + 1))
                Expect.isFalse (equalsN && equalsNext) (sprintf "%A equals both %d and %d" g n (n + 1)))
        testPropertyWithConfig config "garbage with no digit or constant never equals a number" <|
            Prop.forAll (Arb.fromGen (Gen.zip valuelessGen numberGen)) (fun (g, n) ->
                Expect.isFalse (MathEquivalence.Equivalent(g, n)) (sprintf "%A equals %s" g n)
                Expect.isFalse (MathEquivalence.Equivalent(n, g)) (sprintf "%s equals %A" n g))
    ]
