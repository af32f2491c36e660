/// Properties of the math grader over generated answers: it never throws, it is reflexive and symmetric,
/// and number formats agree.
module SimKO.Data.Tests.EquivalenceProperties

open System
open System.Globalization
open Expecto
open FsCheck
open FsCheck.FSharp
open SimKO.Data
open SimKO.Data.Answers

/// LaTeX-like text built from the pieces real answers (and broken model outputs) are made of.
type LatexText = LatexText of string

let private pieces =
    [| "\\frac"; "{"; "}"; "("; ")"; "["; "]"; "\\sqrt"; "^"; "_"; "1"; "2"; "37"; "0.5"; "x"; "y"; "\\pi"; ","; "=";
       "\\pm"; "\\left("; "\\right)"; "\\text{"; "$"; "\\boxed{"; "-"; "+"; "*"; "/"; "\\\\"; "&"; "\\begin{pmatrix}";
       "\\end{pmatrix}"; "\\infty"; "\\cup"; "\\%"; "\\"; " "; "e"; "i"; "."; "\\{"; "\\}"; "|"; "!"; "\\sin"; "\\log_";
       "^\\circ"; "cm"; "and"; "\\,"; "\\!"; "'"; "1e5"; "\\cdot"; "\\times"; "\\lfloor"; "\\rfloor"; "52_8" |]

/// Whole numbers as plain, comma-grouped, decimal and fraction text.
type WholeNumber = WholeNumber of int64

type Generators =
    static member LatexText() : Arbitrary<LatexText> =
        Gen.elements pieces |> Gen.listOf |> Gen.map (String.concat "" >> LatexText) |> Arb.fromGen
    static member WholeNumber() : Arbitrary<WholeNumber> =
        Gen.choose64 (-5_000_000L, 5_000_000L) |> Gen.map WholeNumber |> Arb.fromGen

let private config = { FsCheckConfig.defaultConfig with arbitrary = [ typeof<Generators> ]; maxTest = 400 }

let tests =
    testList "equivalence properties" [
        testPropertyWithConfig config "grading never throws on LaTeX-like text" <| fun (LatexText a) (LatexText b) ->
            MathEquivalence.AreEquivalent(a, b) |> ignore
            MathVerifier.Default.Grade(Problem("p", "", b), a) |> ignore
            AnswerNormalizer.Normalize a |> ignore

        testPropertyWithConfig config "grading never throws on arbitrary strings" <| fun (a: string) (b: string) ->
            let a, b = (if isNull a then "" else a), (if isNull b then "" else b)
            MathEquivalence.AreEquivalent(a, b) |> ignore
            MathVerifier.Default.Grade(Problem("p", "", b), a) |> ignore

        testPropertyWithConfig config "equivalence is symmetric" <| fun (LatexText a) (LatexText b) ->
            MathEquivalence.AreEquivalent(a, b) = MathEquivalence.AreEquivalent(b, a)

        testPropertyWithConfig config "a whole number equals its decimal, comma-grouped, fraction and boxed forms" <| fun (WholeNumber n) ->
            let inv = CultureInfo.InvariantCulture
            let plain = n.ToString(inv)
            let forms =
                [ n.ToString("0.00", inv); n.ToString("N0", inv); sprintf "\\frac{%d}{2}" (2L * n)
                  sprintf "\\boxed{%s}" plain; sprintf "$%s$" plain; sprintf "%s." plain ]
            forms |> List.forall (fun f -> MathEquivalence.AreEquivalent(f, plain) && MathEquivalence.AreEquivalent(plain, f))

        testPropertyWithConfig config "different whole numbers are never equivalent" <| fun (WholeNumber n) (WholeNumber m) ->
            n = m || not (MathEquivalence.AreEquivalent(n.ToString(CultureInfo.InvariantCulture), m.ToString(CultureInfo.InvariantCulture)))

        testPropertyWithConfig config "a fraction equals its terminating decimal" <| fun (WholeNumber p) (den: bool) ->
            let q = if den then 8L else 25L
            let dec = (decimal p / decimal q).ToString(CultureInfo.InvariantCulture)
            MathEquivalence.AreEquivalent(sprintf "\\frac{%d}{%d}" p q, dec)

        testPropertyWithConfig config "the boxed answer is found whatever reasoning precedes it" <| fun (WholeNumber n) (LatexText prefix) ->
            let prefix = prefix.Replace("\\boxed", "").Replace("\\fbox", "")
            let completion = sprintf "%s\nSo the result is $\\boxed{%d}$." prefix n
            let g = MathVerifier.Default.Grade(Problem("p", "", string n), completion)
            g.Correct && g.Extracted = string n
    ]
