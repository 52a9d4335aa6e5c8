//! `mmrun plan`'s numbers are checked, from the command line and from the recipe: a batch of
//! 0 or 10^11 images, a side of 0 or 10^5 pixels are errors naming the argument or key (a
//! huge batch used to overflow the memory plan and panic).

fn plan(args: &[&str]) -> (i32, String) {
    crate::bin::mmrun(&[&["plan", "pipelines/quickstart.recipe"][..], args].concat())
}

#[test]
fn batch_and_size_arguments_are_checked() {
    for (args, needles) in [
        (&["--batch", "0"][..], &["--batch", "'0'"][..]),
        (&["--batch", "100000000000"], &["--batch", "1024"]),
        (&["--size", "100000x100000"], &["--size", "16384"]),
        (&["--size", "0x64"], &["--size", "'0x64'"]),
        (&["--size", "64"], &["--size", "HxW"]),
    ] {
        let (code, text) = plan(args);
        assert_eq!(code, 2, "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{text}");
        for n in needles {
            assert!(text.contains(n), "{args:?}: `{n}` not in {text}");
        }
    }
    let (code, text) = plan(&["--batch", "3", "--size", "64x96"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("batch: 3 x 3 x 64 x 96"), "{text}");
}

#[test]
fn the_recipes_own_batch_size_is_checked() {
    let (code, text) = plan(&["--set", "data.samples_per_gpu=100000000000"]);
    assert_eq!(code, 1, "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(
        text.contains("data.samples_per_gpu") && text.contains("100000000000"),
        "{text}"
    );
}
