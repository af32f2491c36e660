/// Every test of SimKO.Data, joined into one list for the test console.
module SimKO.Data.Tests.All
open Expecto
let tests =
    testList "Data" [
        AnswerExtractionTests.tests
        MathEquivalenceTests.tests
        MathGraderTests.tests
        DatasetsTests.tests
        BbhTests.tests
        ParquetTests.tests
        VerlFormatTests.tests
        SandboxTests.tests
        RewardFunctionTests.tests
        ChatTemplateTests.tests
        HumanEvalTests.tests
        ProgramTaskTests.tests
    ]
