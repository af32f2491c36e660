/// BIG-Bench Hard: every task file loads with its row count (6,511 in all), each target scores as
/// correct against itself (bare, boxed, "the answer is", in Markdown emphasis) and another task row's
/// different target as wrong; an answer naming more than one option is wrong; the scoring rules on
/// hand-written cases; each task's answer format; malformed files fail with file and example.
module SimKO.Data.Tests.BbhTests

open System
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open SimKO.Data.Logic
open SimKO.Data.Math

let private needShared () = DatasetsTests.needShared ()

let private rowCounts =
    dict [ "causal_judgement", 187; "penguins_in_a_table", 146; "snarks", 178 ] // every other task has 250

let private withBbhFile (task: string) (text: string) (f: string -> string -> unit) =
    let root = Path.Combine(Path.GetTempPath(), "simko-bbh-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory(Path.Combine(root, "bbh")) |> ignore
    let path = Path.Combine(root, "bbh", task + ".json")
    File.WriteAllText(path, text)
    try f root path finally Directory.Delete(root, true)

let private loadError root task =
    try Bbh.Load(task, root) |> ignore; "no error" with :? DatasetException as e -> e.Message

let private graded completion target = snd (Bbh.Grade(completion, target).ToTuple())

/// Ways to write an option letter X in an answer.
let private optionForms = [ sprintf "(%c)"; sprintf "%c"; sprintf "%c)"; sprintf "option %c"; sprintf "Option (%c)"; sprintf "%c." ]

/// Ways to join two options.
let private joiners = [ " or "; " and "; ", "; ","; "/"; " / "; " & "; ", or "; " and/or "; " vs "; " "; "" ]

/// Ways to put an answer in a completion.
let private placements = [ id; sprintf "Let me think.\nSo the answer is %s."; sprintf "Reasoning.\n\\boxed{%s}"; sprintf "**Answer:** %s" ]

/// One hedged answer: the target option and another, in some form, order, joiner and placement.
type Hedge = { Target: char; Other: char; TargetForm: int; OtherForm: int; Joiner: int; TargetFirst: bool; Emphasis: bool; Placement: int }

let private hedgeGen =
    gen {
        let letters = [ 'A' .. 'R' ]
        let! target = Gen.elements letters
        let! other = Gen.elements (letters |> List.filter ((<>) target))
        let! tf = Gen.choose (0, optionForms.Length - 1)
        let! ofm = Gen.choose (0, optionForms.Length - 1)
        let! j = Gen.choose (0, joiners.Length - 1)
        let! first = Gen.elements [ true; false ]
        let! emphasis = Gen.elements [ true; false ]
        let! p = Gen.choose (0, placements.Length - 1)
        return { Target = target; Other = other; TargetForm = tf; OtherForm = ofm; Joiner = j; TargetFirst = first; Emphasis = emphasis; Placement = p }
    }

/// The completion a Hedge describes, with `other` as the second option (the target itself gives
/// the same answer without a hedge).
let private hedgedCompletion (h: Hedge) (other: char) =
    let em (x: string) = if h.Emphasis then "**" + x + "**" else x
    let t, o = em (optionForms.[h.TargetForm] h.Target), em (optionForms.[h.OtherForm] other)
    let first, second = if h.TargetFirst then t, o else o, t
    // only a parenthesised second option reads as one without a joiner ("(A) B" names only A)
    let joiner = if joiners.[h.Joiner].Trim() = "" && not (second.TrimStart('*').StartsWith "(") then " or " else joiners.[h.Joiner]
    placements.[h.Placement] (first + joiner + second)

let tests =
    testList "bbh" [
        testCase "every task file loads with its row count, 6,511 in all" <| fun () ->
            let root = needShared ()
            Expect.equal (Directory.GetFiles(Path.Combine(root, "bbh"), "*.json").Length) 27 "27 files"
            let mutable total = 0
            for task in Bbh.Tasks do
                let rows = Bbh.Load(task, root)
                let expected = if rowCounts.ContainsKey task then rowCounts.[task] else 250
                Expect.equal rows.Count expected task
                Expect.isTrue (rows |> Seq.forall (fun r -> r.Task = task && r.Input.Length > 0)) task
                total <- total + rows.Count
            Expect.equal total 6511 "rows in all"
        testCase "each target scores as correct against itself: bare, boxed, and after 'the answer is'" <| fun () ->
            let root = needShared ()
            for task in Bbh.Tasks do
                for r in Bbh.Load(task, root) do
                    // LaTeX escapes braces inside \boxed{} (Dyck targets contain them)
                    let boxed = r.Target.Replace("{", "\\{").Replace("}", "\\}")
                    for completion in [ r.Target; sprintf "Let me think.\nSo the final answer is \\boxed{%s}." boxed; sprintf "Step by step...\nSo the answer is %s." r.Target ] do
                        let extracted, ok = Bbh.Grade(completion, r.Target).ToTuple()
                        Expect.isTrue ok (sprintf "%s: '%s' (extracted '%s')" r.Id completion extracted)
        testCase "a shuffled target (another row's, different after normalising and without spaces) scores as wrong" <| fun () ->
            let root = needShared ()
            let rng = Random 7
            let mutable checkedCount = 0
            for task in Bbh.Tasks do
                let rows = Bbh.Load(task, root) |> Array.ofSeq
                let targets = rows |> Array.map _.Target
                rng.Shuffle targets
                for r, other in Array.zip rows targets do
                    let canonical (x: string) = (Bbh.Normalize x).Replace(" ", "")
                    if canonical other <> canonical r.Target then
                        Expect.isFalse (Bbh.Matches(other, r.Target)) (sprintf "%s: '%s' against target '%s'" r.Id other r.Target)
                        Expect.isFalse (snd (Bbh.Grade(sprintf "\\boxed{%s}" (other.Replace("{", "\\{").Replace("}", "\\}")), r.Target).ToTuple())) r.Id
                        checkedCount <- checkedCount + 1
            Expect.isGreaterThan checkedCount 3000 "most rows have a different shuffled target"
        testCase "the scoring rules" <| fun () ->
            for answer, target, expected in [
                "(B)", "(B)", true; "B", "(B)", true; "b)", "(B)", true; "(B) Frankenstein", "(B)", true
                "option (b)", "(B)", true; "\\text{(B)}", "(B)", true; "(C)", "(B)", false; "Bees", "(B)", false
                "true", "True", true; "True.", "True", true; "False", "True", false; "$24$", "24", true; "24.0", "24", true
                "-35", "-35", true; "−35", "-35", true; "35", "-35", false; "yes", "Yes", true; "no", "Yes", false
                "valid", "invalid", false; ")]}", ") ] }", true; "\\} )", "} )", true; ")]", ") ] }", false
                "apple  Banana cherry", "apple banana cherry", true; "banana apple cherry", "apple banana cherry", false
                "", "True", false ] do
                Expect.equal (Bbh.Matches(answer, target)) expected (sprintf "'%s' vs '%s'" answer target)
        testCase "each target in Markdown emphasis (**, *, __) still scores as correct" <| fun () ->
            let root = needShared ()
            for task in Bbh.Tasks do
                for r in Bbh.Load(task, root) do
                    for mark in [ "**"; "*"; "__"; "***" ] do
                        for completion in [ mark + r.Target + mark; sprintf "So the answer is %s%s%s." mark r.Target mark ] do
                            Expect.isTrue (graded completion r.Target) (sprintf "%s: '%s'" r.Id completion)
        testCase "over every multiple-choice row, the target joined with another option scores as wrong" <| fun () ->
            let root = needShared ()
            let mutable hedged = 0
            for task in Bbh.Tasks do
                for r in Bbh.Load(task, root) do
                    if r.Target.Length = 3 && r.Target.[0] = '(' then
                        let other = if r.Target.[1] = 'A' then "(B)" else "(A)"
                        for completion in [ r.Target + " or " + other; other + " or " + r.Target; sprintf "the answer is %s, %s." r.Target other
                                            sprintf "%c and %c" r.Target.[1] other.[1] ] do
                            Expect.isFalse (graded completion r.Target) (sprintf "%s: '%s'" r.Id completion)
                        hedged <- hedged + 1
            Expect.isGreaterThan hedged 4000 "most rows are multiple choice"
        testPropertyWithConfig (DatasetsTests.propertyConfig 500) "an answer naming the target and another option is wrong; the same answer naming only the target is right" <|
            Prop.forAll (Arb.fromGen hedgeGen) (fun h ->
                let target = sprintf "(%c)" h.Target
                let hedge, single = hedgedCompletion h h.Other, hedgedCompletion h h.Target
                (not (graded hedge target) && graded single target) |> Prop.label (sprintf "hedge '%s', single '%s'" hedge single))
        testCase "hedging, case by case: every pattern of naming several options is wrong" <| fun () ->
            for answer in [ "(A) or (B)"; "A and C"; "the answer is (A), (B)"; "(B) or (A)"; "A, B, or C"; "(A)/(B)"; "A or B"; "option A or option B"
                            "(A) (B)"; "(A)(B)"; "(B) Frankenstein or (A) Dracula"; "(A), although (C) is possible"; "**(A)** or **(B)**"
                            "A & B"; "A/B"; "a and c"; "A and/or B"; "\\boxed{(A) or (B)}"; "(A) and (C) Are both plausible" ] do
                Expect.isFalse (graded answer "(A)") (sprintf "'%s' against (A)" answer)
        testCase "option text after the letter names no other option (articles, commas)" <| fun () ->
            for answer, target in [ "(B) A Beautiful Mind", "(B)"; "(B), a heptagon", "(B)"; "(A) a dog and a cat", "(A)"; "B. The second one", "(B)"
                                    "(C) 12/14/2026", "(C)"; "A, because the first premise holds", "(A)"; "(B) or (B)", "(B)" ] do
                Expect.isTrue (graded answer target) (sprintf "'%s' against %s" answer target)
        testCase "Markdown emphasis around an answer is ignored; emphasis inside a word or a spaced operator is kept" <| fun () ->
            for answer, target, expected in [
                "**(B)**", "(B)", true; "*(B)*", "(B)", true; "__(B)__", "(B)", true; "**B**", "(B)", true; "***(B)***", "(B)", true
                "**(B)** Frankenstein", "(B)", true; "**(C)**", "(B)", false; "*True*", "True", true; "*True*.", "True", true
                "__valid__", "valid", true; "__invalid__", "valid", false; "_No_", "No", true; "**-35**", "-35", true; "**) ]**", ") ]", true
                "**apple banana**", "apple banana", true ] do
                Expect.equal (Bbh.Matches(answer, target)) expected (sprintf "'%s' vs '%s'" answer target)
            Expect.isTrue (graded "So the answer is **(B)**." "(B)") "after 'the answer is'"
            Expect.isTrue (graded "Reasoning.\n**Final Answer:** (B)" "(B)") "after a bold 'Final Answer:'"
            for text, kept in [ "snake_case", "snake_case"; "2 * 3", "2 * 3"; "2*3", "2*3"; "**bold** word", "bold word"; "a __b__ c", "a b c" ] do
                Expect.equal (Bbh.WithoutEmphasis text) kept text
        testCase "each task's answer format: options for the 17 multiple-choice tasks, as their targets show" <| fun () ->
            let root = needShared ()
            for task in Bbh.Tasks do
                let rows = Bbh.Load(task, root)
                let options = rows |> Seq.filter (fun r -> r.Target.Length = 3 && r.Target.[0] = '(') |> Seq.length
                let expected = if options * 2 > rows.Count then BbhAnswerFormat.MultipleChoice else BbhAnswerFormat.FromTarget
                Expect.equal (Bbh.FormatOf task) expected task
                for r in rows do
                    Expect.isTrue (snd (Bbh.Grade(r.Target, r.Target, Bbh.FormatOf task).ToTuple())) (sprintf "%s with its task's format" r.Id)
        testCase "a multiple-choice task reads a bare-letter reference as the option; other formats do not" <| fun () ->
            let mc = BbhAnswerFormat.MultipleChoice
            for answer, reference, format, expected in [
                "(B)", "B", mc, true; "B", "b", mc, true; "(B) Frankenstein", "B)", mc, true; "(C)", "B", mc, false; "(A) or (B)", "B", mc, false
                "(B)", "B", BbhAnswerFormat.FromTarget, false; "Monsters, Inc", "Monsters, Inc", mc, true; "Yes", "Yes", mc, true ] do
                Expect.equal (Bbh.Matches(answer, reference, format)) expected (sprintf "'%s' vs '%s' (%A)" answer reference format)
            let message = try Bbh.FormatOf "nope" |> ignore; "no error" with :? DatasetException as e -> e.Message
            Expect.stringContains message "unknown BBH task 'nope'" message
            Expect.stringContains message "word_sorting" "lists the tasks"
        testCase "answer extraction: boxed first, then 'the answer is', then a bare one-line answer" <| fun () ->
            Expect.equal (Bbh.ExtractAnswer "so (A)... the answer is (C).\nThus \\boxed{(B)}") "(B)" "last boxed"
            Expect.equal (Bbh.ExtractAnswer "Reasoning.\nSo the answer is (C).") "(C)" "the answer is"
            Expect.equal (Bbh.ExtractAnswer " (D) ") "(D)" "bare"
            Expect.isNull (Bbh.ExtractAnswer "line one\nline two without a marker") "no answer in a multi-line text"
            Expect.isNull (Bbh.ExtractAnswer "   ") "empty"
        testCase "names select all tasks or one; an unknown task is an error listing the known ones" <| fun () ->
            Expect.equal (Bbh.Select "bbh").Count 27 "all"
            Expect.sequenceEqual (Bbh.Select "bbh/web_of_lies") [ "web_of_lies" ] "one"
            let message = try Bbh.Select "bbh/nope" |> ignore; "no error" with :? DatasetException as e -> e.Message
            Expect.stringContains message "unknown BBH task 'nope'" message
            Expect.stringContains message "web_of_lies" "lists the known tasks"
        testCase "malformed files name the file, the example and what was expected" <| fun () ->
            withBbhFile "navigate" """{"canary": "x"}""" (fun root path ->
                let m = loadError root "navigate"
                Expect.stringContains m path "file"
                Expect.stringContains m "fields present: canary" m)
            withBbhFile "navigate" """{"examples": [{"input": "q", "target": "Yes"}, {"input": "q2"}]}""" (fun root _ ->
                let m = loadError root "navigate"
                Expect.stringContains m "examples[1]" m
                Expect.stringContains m "'target'" m
                Expect.stringContains m "fields present: input" m)
            withBbhFile "navigate" """{"examples": []}""" (fun root _ -> Expect.stringContains (loadError root "navigate") "empty" "empty file")
            withBbhFile "navigate" """{"examples": [""" (fun root _ -> Expect.stringContains (loadError root "navigate") "not valid JSON" "broken JSON")
    ]
