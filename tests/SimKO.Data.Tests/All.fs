/// Every test of SimKO.Data, joined into one list for the test console.
module SimKO.Data.Tests.All
open Expecto
let tests =
    testList "Data" [
        ExtractionTests.tests
        EquivalenceTable.tests
        EquivalenceProperties.tests
        DatasetTests.tests
        BbhTests.tests
        PromptTests.tests
        CountdownTests.tests
        WordProblemTests.tests
        OrderingTests.tests
        TaskTests.tests
        GradingTests.tests
    ]
