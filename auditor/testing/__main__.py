from auditor.testing.twilio import main

main()
