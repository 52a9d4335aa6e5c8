//! `mmrun explain`: a component's parameters, an error code's long explanation, the components
//! of a category (`--list`), or the whole language reference (`--reference`).

/// Arguments of `mmrun explain`.
#[derive(clap::Args)]
pub struct Args {
    /// A component name (`retina_head`) or an error code (`E0302`).
    #[arg(required_unless_present_any = ["reference", "list"])]
    pub name: Option<String>,
    /// Print the whole language reference (Markdown; `docs/recipe.md` is this output).
    #[arg(long, conflicts_with_all = ["name", "list"])]
    pub reference: bool,
    /// List the components, all or of one category (`--list hook`, `--list transforms`).
    #[arg(long, value_name = "CATEGORY", num_args = 0..=1, conflicts_with = "name")]
    pub list: Option<Option<String>>,
    /// Output format for a component, an error code or `--list`: text, or one JSON object
    /// (`--reference` is Markdown either way).
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::Format,
}

pub fn run(args: Args) -> u8 {
    let json = args.format == super::Format::Json;
    if let Some(category) = args.list {
        let listed = if json {
            crate::registry::categories(category.as_deref())
                .map(|c| list_json(&c).to_string() + "\n")
        } else {
            crate::registry::list(category.as_deref())
        };
        return match listed {
            Ok(text) => {
                crate::out!("{text}");
                super::EXIT_OK
            }
            Err(e) => {
                crate::errln!("error: {e}");
                super::EXIT_PROBLEMS
            }
        };
    }
    let Some(name) = args.name else {
        crate::out!("{}", crate::recipe::reference::markdown());
        return super::EXIT_OK;
    };
    let found = if json {
        explain_json(&name).map(|v| v.to_string() + "\n")
    } else {
        explain(&name)
    };
    match found {
        Some(text) => {
            crate::out!("{text}");
            super::EXIT_OK
        }
        None => {
            crate::errln!("error: `{}` is neither a component nor an error code", name);
            super::EXIT_CANNOT_RUN
        }
    }
}

/// The text for a name or code.
pub fn explain(name: &str) -> Option<String> {
    if let Some(c) = crate::recipe::codes::lookup(name) {
        return Some(format!("{}: {}\n\n{}\n", c.code, c.title, c.explanation));
    }
    crate::registry::explain(name)
}

/// `--list --format json`: `{"categories": [{"name", "components": [{"name", "doc"}]}]}`.
fn list_json(categories: &[crate::registry::Category]) -> serde_json::Value {
    let cats: Vec<_> = categories
        .iter()
        .map(|&cat| {
            let comps: Vec<_> = crate::registry::components()
                .filter(|c| c.category == cat)
                .map(|c| serde_json::json!({"name": c.name, "doc": c.doc}))
                .collect();
            serde_json::json!({"name": cat.name(), "components": comps})
        })
        .collect();
    serde_json::json!({ "categories": cats })
}

/// `explain NAME --format json`: an error code as `{"code", "title", "explanation"}`, or the
/// components of that name as `{"components": [{"name", "category", "doc", "params": [{"name",
/// "type", "doc", "required", "default"}]}]}` (`default`: the value a recipe that leaves the
/// parameter out gets, `null` when it must give it or may leave it absent).
fn explain_json(name: &str) -> Option<serde_json::Value> {
    if let Some(c) = crate::recipe::codes::lookup(name) {
        return Some(serde_json::json!({
            "code": c.code, "title": c.title, "explanation": c.explanation
        }));
    }
    let found = crate::registry::find_any(name);
    if found.is_empty() {
        return None;
    }
    let comps: Vec<_> = found
        .into_iter()
        .map(|c| {
            let params: Vec<_> = crate::registry::params_of(c)
                .into_iter()
                .map(|p| {
                    let default = crate::registry::default_value(&p.def, &p.ty);
                    serde_json::json!({
                        "name": p.name, "type": p.ty.describe(), "doc": p.doc,
                        "required": matches!(p.def, crate::registry::Def::Required),
                        "default": default
                    })
                })
                .collect();
            serde_json::json!({
                "name": c.name, "category": c.category.name(), "doc": c.doc, "params": params
            })
        })
        .collect();
    Some(serde_json::json!({ "components": comps }))
}
